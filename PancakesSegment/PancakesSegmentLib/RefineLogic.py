"""Click refinement of one segment in MRML: the session, with undo.

Markups (RAS) become clicks on one slice (RefineClicks); that slice is refined by the
Refiner (seeded with the segment's mask there when the session started) and written
back into the segment on that slice only (SegmentSlabs). An update reads, refines and
writes that one slice, so its cost does not grow with the volume (propagation to
neighbouring slices reads and writes the slab of slices within its reach).

Usage::

    logic = RefineLogic(scene)
    result = logic.refine(segmentationNode, "P03_L07", volumeNode, positiveNode, negativeNode)
    logic.undo()      # puts back what the last refine changed (logic.redo() brings it back)
    logic.finish()    # ends the session: next clicks start from the segment as it is
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import slicer

from pancakes.contract import PROPAGATION_REACH_MM, Cancel, Progress
from pancakes.refine.refiner import reach_in_slices

from .RefineClicks import SliceClicks, clicksOnSlice, controlPointsRas, sliceAxisFromViews
from .SegmentSlabs import (requireSharedFrame, segmentSlab, transformToWorld, volumeSpacing, volumeVoxels,
                           writeSegmentSlab)

MAX_UNDO = 10


@dataclass
class RefineResult:
    """What one refine did: the slice, the slices that changed and how many voxels changed."""

    axis: int
    index: int
    changedSlices: List[int]
    voxelsChanged: int


class RefineLogic:
    """Refinement sessions with undo. ``refiner``: a pancakes.Refiner (or anything with its
    ``volume_window``, ``refine_slice_of_volume`` and, for propagation, ``refine_volume_slice``);
    None loads the bundled one on first use."""

    def __init__(self, refiner=None, device: str = "auto") -> None:
        self._refiner = refiner
        self._loaded = False
        self._device = device
        self._seeds: Dict[tuple, np.ndarray] = {}  # session seed per (segmentation, segment, volume, axis, slice)
        self._starts: Dict[tuple, np.ndarray] = {}  # the segment's slice when its session started
        self._windows: Dict[str, Tuple[int, Tuple[float, float]]] = {}  # volume ID -> (voxels' MTime, window)
        # Per slice key: (logits, the mask they gave) of the last refine, fed back as "previous"
        # while the segment still shows that mask (the refiner was trained on its probabilities).
        self._lastLogits: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}
        # Undo uses vtkSegmentationHistory, the class behind the Segment Editor's own undo:
        # whole-segmentation states, since a refined segment also takes voxels from others.
        self._histories: Dict[str, "slicer.vtkSegmentationHistory"] = {}
        self._lastNode = None  # the segmentation node that undo and redo act on
        # Called with the segmentation node just before each change; the Slicer panel uses it
        # to save a state in the Segment Editor's undo stack as well.
        self.beforeChange: Optional[Callable[[object], None]] = None
        # Called with (segmentation node, segment ID, volume node, axis, index, the segment's slice) when a
        # slice's session starts; returns the seed to start from instead of that slice, or None. The panel
        # gives a kept Pancakes label its core (pancakes.refine.seed_core): seeded with the whole label the
        # refiner trailed an empty start at clicks 2-4, seeded with the core it does not (MODEL_CARD.md).
        self.seedCore: Optional[Callable[..., Optional[np.ndarray]]] = None
        # Called like seedCore when a slice's session starts; returns the kept label's protocol on that slice,
        # (labels, confidence bytes), or None. Every update of the slice then adds pancakes.refine.label_prior:
        # pixels sharing a positive click's label are pushed in (+0.014 Dice at 3 clicks on the test half,
        # MODEL_CARD.md).
        self.labelPrior: Optional[Callable[..., Optional[Tuple[np.ndarray, np.ndarray]]]] = None
        self._priors: Dict[tuple, Optional[Tuple[np.ndarray, np.ndarray]]] = {}  # per slice key, from its start

    @property
    def refiner(self):
        if self._refiner is None:
            from pancakes import Refiner

            self._refiner = Refiner.load(device=self._device)
            self._loaded = True  # ours to drop on a device change, unlike one passed in
        return self._refiner

    @property
    def device(self) -> str:
        return self._device

    def setDevice(self, device: str) -> None:
        """Use ``device`` ("auto", "cpu", "cuda") from now on: a refiner loaded for another is dropped."""
        if device != self._device:
            self._device = device
            if self._loaded:
                self._refiner, self._loaded = None, False

    def release(self) -> None:
        """Forget the loaded refiner and the cached windows and logits (module reload, scene close)."""
        self.finish()
        if self._loaded:
            self._refiner, self._loaded = None, False
        self._windows.clear()
        self._lastLogits.clear()

    def prepare(self, volumeNode) -> None:
        """Pay a session's one-off costs before its first click: load the refiner, compute the
        volume's intensity window and run the network once (TorchScript optimises its first
        runs). Without this the first click of a CT took ~250 ms against ~45 for the next ones.
        Raises PancakesInputError for a volume that cannot be refined (empty, constant, under a
        non-linear transform)."""
        transformToWorld(volumeNode)  # a non-linear transform is refused here, before the first click
        voxels = volumeVoxels(volumeNode)
        window = self._window(volumeNode, voxels)
        empty = np.zeros(voxels.shape[1:3], bool)
        for _ in range(2):  # the profiling executor specialises on the second run
            self.refiner.refine_slice_of_volume(voxels, 0, voxels.shape[0] // 2, empty, [], [], window=window)

    def refine(self, segmentationNode, segmentId: str, volumeNode, positiveNode=None, negativeNode=None,
               axis: Optional[int] = None, propagate: bool = False, progress: Progress = None,
               cancel: Cancel = None, reachMm: Optional[float] = None) -> RefineResult:
        """Refine ``segmentId`` on the slice that holds the clicks of the markups nodes.

        negativeNode None with a positiveNode: one mixed list (negatives by label or
        description). The same node passed twice counts as one mixed list too. Without
        ``propagate`` an update reads, refines and writes that one slice only; with it the
        refined slice spreads to its neighbours (one 3D solve, Refiner.refine_volume_slice), which
        reads and writes the slices within its reach and takes under a second on a CT: progress and
        cancel go to the refiner (it reports (0, 1) and (1, 1), and asks cancel() before the solve and
        between its iterations: True keeps only the clicked slice's change). reachMm: how far it may
        spread either side, in mm (None: the refiner's PROPAGATION_REACH_MM). Slices of the segment
        refined with clicks since the session began keep their result, and the label is filled in
        between them and this slice.
        """
        requireSharedFrame(segmentationNode, volumeNode)
        mixed = negativeNode is None or negativeNode is positiveNode
        pos, neg, labels = controlPointsRas(positiveNode, split=mixed)
        if not mixed:
            negPos, _, negLabels = controlPointsRas(negativeNode)
            neg, labels = neg + negPos, labels + negLabels
        if axis is None and (pos or neg) and volumeNode.GetScene() is not None:
            axis = sliceAxisFromViews(volumeNode.GetScene(), volumeNode, pos + neg)
        clicks = clicksOnSlice(volumeNode, pos, neg, axis, labels)
        key = (segmentationNode.GetID(), segmentId, volumeNode.GetID(), clicks.axis, clicks.index)
        if propagate:
            return self._refinePropagated(segmentationNode, segmentId, volumeNode, clicks, key, progress, cancel,
                                          reachMm)
        return self._refineSlice(segmentationNode, segmentId, volumeNode, clicks, key)

    def _refineSlice(self, segmentationNode, segmentId: str, volumeNode, clicks: SliceClicks,
                     key: tuple) -> RefineResult:
        """The clicked slice read, refined and written: the cost of one slice, whatever the volume."""
        a, index = clicks.axis, clicks.index
        currentSlice = np.take(segmentSlab(segmentationNode, segmentId, volumeNode, a, index, index + 1), 0, axis=a)
        prior = self._prior(key, segmentationNode, segmentId, volumeNode, currentSlice)
        seedSlice, previous = self._seedAndPrevious(
            key, currentSlice, self._core(key, segmentationNode, segmentId, volumeNode, currentSlice))
        voxels = volumeVoxels(volumeNode)
        logits = self.refiner.refine_slice_of_volume(
            voxels, a, index, seedSlice, clicks.positive, clicks.negative, previous=previous,
            spacing=volumeSpacing(volumeNode), window=self._window(volumeNode, voxels), **_given(label_prior=prior))
        refinedSlice = np.asarray(logits) > 0
        self._lastLogits[key] = (logits, refinedSlice)
        voxelsChanged = int((refinedSlice != currentSlice).sum())
        if voxelsChanged:
            self._saveForUndo(segmentationNode)
            writeSegmentSlab(segmentationNode, segmentId, volumeNode, np.expand_dims(refinedSlice, a), a, index)
        return RefineResult(a, index, [index] if voxelsChanged else [], voxelsChanged)

    def _refinePropagated(self, segmentationNode, segmentId: str, volumeNode, clicks: SliceClicks,
                          key: tuple, progress: Progress = None, cancel: Cancel = None,
                          reachMm: Optional[float] = None) -> RefineResult:
        """The clicked slice refined and spread to its neighbours. Only the slab of slices within the reach is
        read, refined and written (refine_volume_slice takes it as its volume, with the whole volume's window):
        what a click costs in time and memory grows with the reach, not with the volume."""
        a, index = clicks.axis, clicks.index
        voxels = volumeVoxels(volumeNode)
        spacing = volumeSpacing(volumeNode)
        reach = reach_in_slices(PROPAGATION_REACH_MM if reachMm is None else reachMm, spacing[a], voxels.shape[a])
        lo, hi = max(0, index - reach), min(voxels.shape[a], index + reach + 1)
        slab = [slice(None)] * 3
        slab[a] = slice(lo, hi)
        current = segmentSlab(segmentationNode, segmentId, volumeNode, a, lo, hi)
        currentSlice = np.take(current, index - lo, axis=a)
        prior = self._prior(key, segmentationNode, segmentId, volumeNode, currentSlice)
        seedSlice, previous = self._seedAndPrevious(
            key, currentSlice, self._core(key, segmentationNode, segmentId, volumeNode, currentSlice))
        seed = current.copy()
        where = [slice(None)] * 3
        where[a] = index - lo
        seed[tuple(where)] = seedSlice
        # Slices of this segment the user refined with clicks are settled: the spreading keeps them and fills in
        # between them and this one, instead of writing over an earlier slice's corrections.
        settled = sorted(k[4] - lo for k in self._seeds if k[:4] == key[:4] and k[4] != index and lo <= k[4] < hi) \
            or None
        refined, logits = self.refiner.refine_volume_slice(
            voxels[tuple(slab)], a, index - lo, seed, clicks.positive, clicks.negative, previous=previous,
            propagate=True, spacing=spacing, with_logits=True, window=self._window(volumeNode, voxels),
            **_given(label_prior=prior, progress=progress, cancel=cancel, reach_mm=reachMm, fixed_slices=settled))
        refined = np.asarray(refined, bool)
        self._lastLogits[key] = (logits, np.take(refined, index - lo, axis=a).copy())
        other = tuple(b for b in range(3) if b != a)
        changed = np.flatnonzero((refined != current).any(axis=other))
        if changed.size:
            self._saveForUndo(segmentationNode)
            first, last = int(changed[0]), int(changed[-1])
            span = [slice(None)] * 3
            span[a] = slice(first, last + 1)  # the changed slices, within the slab
            writeSegmentSlab(segmentationNode, segmentId, volumeNode, refined[tuple(span)], a, lo + first)
        return RefineResult(a, index, [lo + int(i) for i in changed], int((refined != current).sum()))

    def _core(self, key: tuple, segmentationNode, segmentId: str, volumeNode, currentSlice: np.ndarray):
        """The seed ``seedCore`` gives a slice whose session starts now, else None."""
        if self.seedCore is None or key in self._seeds:
            return None
        _, _, _, a, index = key
        try:
            core = self.seedCore(segmentationNode, segmentId, volumeNode, a, index, currentSlice)
        except Exception:  # noqa: BLE001 - without its core the slice starts from the segment, as it always could
            logging.exception("PancakesSegment: no seed core for %s, refining from the segment", segmentId)
            return None
        return None if core is None else np.asarray(core, bool)

    def _prior(self, key: tuple, segmentationNode, segmentId: str, volumeNode, currentSlice: np.ndarray):
        """The label prior ``labelPrior`` gives a slice whose session starts now; the one it gave at the start
        for a slice already in session (None when it gave none, or the session started without it)."""
        if key in self._priors or key in self._seeds:
            return self._priors.get(key)
        prior = None
        if self.labelPrior is not None:
            _, _, _, a, index = key
            try:
                prior = self.labelPrior(segmentationNode, segmentId, volumeNode, a, index, currentSlice)
            except Exception:  # noqa: BLE001 - without the prior the refiner works as it always could
                logging.exception("PancakesSegment: no label prior for %s, refining without it", segmentId)
        self._priors[key] = prior
        return prior

    def _seedAndPrevious(self, key: tuple, currentSlice: np.ndarray,
                         core: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The session's seed of this slice and what the refiner gets as previous, both [rows, cols]."""
        # The seed stays the mask the session started from (or the core given for it); the segment as
        # it is now (the last result, or the user's own edits) is the "previous" prediction.
        if key not in self._seeds:
            self._starts[key] = currentSlice.copy()
            self._seeds[key] = currentSlice.copy() if core is None else core
        return self._seeds[key], self._previous(key, currentSlice, self._starts[key])

    def _window(self, volumeNode, voxels: np.ndarray) -> Tuple[float, float]:
        """The refiner's intensity window of the whole volume, computed once per volume: its
        strided sample costs more than refining a slice. Keyed by the voxels' MTime, so an
        edited volume (or new voxels in the node) gets a new window."""
        stamp = volumeNode.GetImageData().GetMTime()
        cached = self._windows.get(volumeNode.GetID())
        if cached is None or cached[0] != stamp:
            cached = (stamp, self.refiner.volume_window(voxels))
            self._windows[volumeNode.GetID()] = cached
        return cached[1]

    def _previous(self, key: tuple, currentSlice: np.ndarray, startSlice: np.ndarray) -> Optional[np.ndarray]:
        """What the refiner gets as its previous prediction for this slice [rows, cols].

        The last refine's logits while the segment still shows their mask; None while the
        slice is as the session found it (the refiner then feeds the seed as trained: its seed prior);
        otherwise (undo, a manual edit) the segment as it is now.
        """
        last = self._lastLogits.get(key)
        if last is not None and np.array_equal(currentSlice, last[1]):
            return last[0]
        if np.array_equal(currentSlice, startSlice):
            return None
        return currentSlice.astype(np.float32)

    def _saveForUndo(self, segmentationNode) -> None:
        if self.beforeChange is not None:
            self.beforeChange(segmentationNode)
        history = self._histories.get(segmentationNode.GetID())
        if history is None or history.GetSegmentation() is not segmentationNode.GetSegmentation():
            history = slicer.vtkSegmentationHistory()
            history.SetMaximumNumberOfStates(MAX_UNDO + 1)  # +1: undoing saves the current state for redo
            history.SetSegmentation(segmentationNode.GetSegmentation())
            self._histories[segmentationNode.GetID()] = history
        history.SaveState()
        self._lastNode = segmentationNode

    def _history(self):
        node = self._lastNode
        if node is None or node.GetScene() is None:  # removed from the scene since
            return None
        return self._histories.get(node.GetID())

    def canUndo(self) -> bool:
        history = self._history()
        return history is not None and history.IsRestorePreviousStateAvailable()

    def canRedo(self) -> bool:
        history = self._history()
        return history is not None and history.IsRestoreNextStateAvailable()

    def undo(self) -> bool:
        """Put the segmentation back as it was before the last refine; False when there is nothing to undo."""
        return self.canUndo() and bool(self._history().RestorePreviousState())

    def redo(self) -> bool:
        """Re-apply the last undone refine; False when there is nothing to redo (or the segment was edited since)."""
        return self.canRedo() and bool(self._history().RestoreNextState())

    def finish(self) -> None:
        """End the session: forget seeds and undo steps (the segment keeps its current state)."""
        self._seeds.clear()
        self._starts.clear()
        self._priors.clear()
        self._lastLogits.clear()
        for history in self._histories.values():
            history.SetSegmentation(None)  # stops observing the segmentation
        self._histories.clear()
        self._lastNode = None


def _given(**arguments) -> dict:
    """The keyword arguments that are not None: refiners without them (test doubles, older code) keep working
    where they are not asked for (a segment without a label prior, an update without progress)."""
    return {name: value for name, value in arguments.items() if value is not None}

