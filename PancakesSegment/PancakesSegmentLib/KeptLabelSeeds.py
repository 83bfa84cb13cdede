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

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from pancakes.refine.seed_core import core_byte

from .Segments import protocolSegmentIds, segmentationInfo


class KeptLabelSeeds:
    """``finishedResults``: SegmentationLogic.finishedResults, the results decoded with the current settings."""

    def __init__(self, finishedResults: Callable[[], List]) -> None:
        self._finishedResults = finishedResults
        # (volume ID, M, K, m, ...) -> the protocol's confidence bytes, voxel array: the last protocol asked for
        self._confidence: Dict[Tuple, np.ndarray] = {}

    def clear(self) -> None:
        self._confidence = {}

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

    def prepare(self, segmentationNode, volumeNode) -> None:
        """Decode the confidence seedCore and labelPrior read for this kept segmentation now (a protocol's
        decode, seconds on a CT-sized volume), so that the first click is not the one that waits. Nothing for
        other nodes."""
        source = self._source(segmentationNode, volumeNode)
        if source is not None:
            self._confidenceOf(*source)

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

    def _source(self, segmentationNode, volumeNode):
        """(result, m) when ``segmentationNode`` is a kept protocol of ``volumeNode``'s current result and its
        predictor gives probabilities; else None."""
        info = segmentationInfo(segmentationNode) if segmentationNode is not None else None
        if info is None or volumeNode is None or info["volumeID"] != volumeNode.GetID():
            return None
        result = next((r for r in self._finishedResults() if r.volumeID == volumeNode.GetID()), None)
        if result is None or (result.M, result.K) != (info["M"], info["K"]) or not 0 <= info["m"] < result.M:
            return None
        if not hasattr(result.predictor, "confidence"):
            return None  # a predictor without probabilities (the self-test's intensity bins)
        return result, info["m"]

    def _confidenceOf(self, result, m: int) -> np.ndarray:
        """Protocol m's confidence bytes of one result, as a voxel array [k, j, i]; the last protocol asked
        for is kept (one byte a voxel, like its labels)."""
        key = (result.volumeID, result.M, result.K, m, result.adapt, result.coarse, result.superpixels)
        if key not in self._confidence:
            self._confidence = {key: sitk.GetArrayFromImage(result.predictor.confidence(result.M, result.K, [m])[0])}
        return self._confidence[key]
