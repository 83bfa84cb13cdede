"""What a kept Pancakes label's click refinement starts from: its core and its protocol's label prior.

Both come from one decode of the kept protocol per volume: how probable each voxel's label is, one byte a
voxel (pancakes.predictor.Predictor.confidence). The core is the label where that byte reaches
pancakes.refine.seed_core.core_byte(); the prior is the protocol's labels with the bytes
(pancakes.refine.label_prior). The last protocol asked for is kept, so picking a segment can decode it
before the first click (``prepare``).

Usage::

    seeds = KeptLabelSeeds(logic.finishedResults)
    core = seeds.seedCore(segmentationNode, "P02_L05", volumeNode, axis, index, currentSlice)   # or None
    prior = seeds.labelPrior(segmentationNode, "P02_L05", volumeNode, axis, index, currentSlice)  # or None
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import SimpleITK as sitk

from pancakes.contract import Cancel, Cancelled, Progress
from pancakes.refine.seed_core import core_byte

from .Segments import protocolSegmentIds, segmentationInfo


class KeptLabelSeeds:
    """``finishedResults``: SegmentationLogic.finishedResults, the results decoded with the current settings."""

    def __init__(self, finishedResults: Callable[[], List]) -> None:
        self._finishedResults = finishedResults
        # (volume ID, M, K, m, ...) -> the protocol's confidence bytes, voxel array: the last protocol asked for
        self._confidence: Dict[Tuple, np.ndarray] = {}
        # Protocols whose decode the user cancelled in prepare: refined from the segment as it stands, so that
        # no click is the one that waits for the decode after all.
        self._declined: Set[Tuple] = set()

    def clear(self) -> None:
        self._confidence = {}
        self._declined = set()

    def seedCore(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int,
                 currentSlice: np.ndarray) -> Optional[np.ndarray]:
        """The core of a kept label on one slice [rows, cols] (pancakes.refine.seed_core), the seed a
        refinement starts from (RefineLogic.seedCore); None unless the segment is a label of this volume's
        current result and still shows that label on the slice (an edited slice keeps its edits as seed)."""
        kept = self._keptLabelSlice(segmentationNode, segmentId, volumeNode, axis, index, currentSlice)
        if kept is None:
            return None
        labels, confidence, k = kept
        return (labels == k + 1) & (confidence >= core_byte())

    def labelPrior(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int,
                   currentSlice: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """The kept label's protocol on one slice: (labels uint8 [rows, cols] of 1..K, confidence bytes
        [rows, cols]), what pancakes.refine.label_prior reads (RefineLogic.labelPrior); None where
        :meth:`seedCore` gives None."""
        kept = self._keptLabelSlice(segmentationNode, segmentId, volumeNode, axis, index, currentSlice)
        return None if kept is None else kept[:2]

    def prepare(self, segmentationNode, volumeNode, progress: Progress = None, cancel: Cancel = None) -> bool:
        """Decode the confidence seedCore and labelPrior read for this kept segmentation now (a protocol's
        decode, seconds on a CT-sized volume), so that the first click is not the one that waits. Nothing for
        other nodes. progress(done, total) hears of the slices decoded; cancel() returning True stops the
        decode, and this protocol's labels are then refined from the segment as it stands, without core or
        prior, until it is prepared again. -> False when cancelled."""
        source = self._source(segmentationNode, volumeNode, declined=True)
        if source is None:
            return True
        self._declined.discard(self._key(*source))
        try:
            self._confidenceOf(*source, progress=progress, cancel=cancel)
        except Cancelled:
            self._declined.add(self._key(*source))
            return False
        return True

    def _keptLabelSlice(self, segmentationNode, segmentId: str, volumeNode, axis: int, index: int,
                        currentSlice: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray, int]]:
        """(the protocol's labels, its confidence bytes, k) on the slice when ``segmentId`` is label k + 1 of a
        kept protocol of ``volumeNode``'s current result and the slice still shows that label; else None."""
        source = self._source(segmentationNode, volumeNode)
        if source is None:
            return None
        result, m = source
        ids = protocolSegmentIds(result.M, result.K, m)
        if segmentId not in ids:
            return None
        k = ids.index(segmentId)
        labels = np.take(sitk.GetArrayViewFromImage(result.labels[m]), index, axis=axis)
        if labels.shape != currentSlice.shape or not np.array_equal(labels == k + 1, currentSlice):
            return None
        return np.array(labels), np.take(self._confidenceOf(result, m), index, axis=axis), k

    def _source(self, segmentationNode, volumeNode, declined: bool = False):
        """(result, m) when ``segmentationNode`` is a kept protocol of ``volumeNode``'s current result and its
        predictor gives probabilities (and, unless ``declined``, its decode was not cancelled); else None."""
        info = segmentationInfo(segmentationNode) if segmentationNode is not None else None
        if info is None or volumeNode is None or info["volumeID"] != volumeNode.GetID():
            return None
        result = next((r for r in self._finishedResults() if r.volumeID == volumeNode.GetID()), None)
        if result is None or (result.M, result.K) != (info["M"], info["K"]) or not 0 <= info["m"] < result.M:
            return None
        if not hasattr(result.predictor, "confidence"):
            return None  # a predictor without probabilities (the self-test's intensity bins)
        if not declined and self._key(result, info["m"]) in self._declined:
            return None
        return result, info["m"]

    @staticmethod
    def _key(result, m: int) -> Tuple:
        return result.volumeID, result.M, result.K, m, result.adapt, result.coarse, result.superpixels

    def _confidenceOf(self, result, m: int, progress: Progress = None, cancel: Cancel = None) -> np.ndarray:
        """Protocol m's confidence bytes of one result, as a voxel array [k, j, i]; the last protocol asked
        for is kept (one byte a voxel, like its labels)."""
        key = self._key(result, m)
        if key not in self._confidence:
            image = result.predictor.confidence(result.M, result.K, [m], cancel=cancel, progress=progress)[0]
            self._confidence = {key: sitk.GetArrayFromImage(image)}
        return self._confidence[key]
