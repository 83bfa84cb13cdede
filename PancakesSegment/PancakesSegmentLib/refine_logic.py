"""Click refinement of one segment in MRML: markups (RAS) -> clicks on one slice -> Refiner -> segment.

Positive and negative clicks come from markups fiducial nodes: either two lists
(positive, negative), or one list whose negative points say so in their label or
description (starting with "-", or containing "neg", "background" or "exclude").
Each control point goes RAS -> IJK through the inverse of the volume's IJKToRAS
matrix, so rotated and anisotropic volumes need nothing special. All points must
lie on one slice along one voxel axis; that slice is refined (seeded with the
segment's mask there when the session started) and written back into the segment,
on that slice only, keeping the segment's ID, name and colour. The segment takes
the voxels it gains from other segments, as the Segment Editor does by default.

Usage::

    logic = RefineLogic(scene)
    result = logic.refine(segmentationNode, "P03_L07", volumeNode, positiveNode, negativeNode)
    logic.undo()      # puts back what the last refine changed (logic.redo() brings it back)
    logic.finish()    # ends the session: next clicks start from the segment as it is
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from pancakes.errors import PancakesInputError

from .Segments import ensureSegmentationConverters
from .VolumeConversion import ijkToRasMatrix, voxelArray

AXIS_NAMES = ("K", "J", "I")  # array axis a of the (k, j, i) voxel array is IJK axis 2 - a
NEGATIVE_WORDS = ("neg", "background", "exclude")
# A point may sit up to this many voxels off the slice it is assigned to: markups
# placed in a view that is not exactly aligned with the voxel grid.
SLICE_TOLERANCE = 1.0
MAX_UNDO = 10


@dataclass
class SliceClicks:
    """Clicks of one slice: array ``axis`` of the (k, j, i) voxels, slice ``index``, (row, col) points."""

    axis: int
    index: int
    positive: List[Tuple[float, float]] = field(default_factory=list)
    negative: List[Tuple[float, float]] = field(default_factory=list)


@dataclass
class RefineResult:
    """What one refine did: the slice, the slices that changed and how many voxels changed."""

    axis: int
    index: int
    changedSlices: List[int]
    voxelsChanged: int


# ---- markups -> voxel clicks ------------------------------------------------------
def isNegativePoint(label: str, description: str) -> bool:
    """Whether a control point of a single mixed list is a negative click (see module docstring)."""
    for text in (label or "", description or ""):
        t = text.strip().lower()
        if t.startswith("-") or any(w in t for w in NEGATIVE_WORDS):
            return True
    return False


def controlPointsRas(markupsNode, split: bool = False) -> Tuple[List[np.ndarray], List[np.ndarray], List[str]]:
    """Placed control points in world RAS -> (positive, negative, labels of all points).

    With ``split`` False every point is positive; with True negatives are told apart by
    isNegativePoint. Points still being placed (position not defined) are left out.
    """
    positive, negative, labels = [], [], []
    if markupsNode is None:
        return positive, negative, labels
    for i in range(markupsNode.GetNumberOfControlPoints()):
        if markupsNode.GetNthControlPointPositionStatus(i) != markupsNode.PositionDefined:
            continue
        ras = [0.0, 0.0, 0.0]
        markupsNode.GetNthControlPointPositionWorld(i, ras)
        label = markupsNode.GetNthControlPointLabel(i)
        negativePoint = split and isNegativePoint(label, markupsNode.GetNthControlPointDescription(i))
        (negative if negativePoint else positive).append(np.array(ras, dtype=float))
        labels.append(label)
    return positive, negative, labels


def rasToArrayIndex(volumeNode, ras: Sequence[float]) -> np.ndarray:
    """RAS point -> continuous (k, j, i) voxel coordinates (integers at voxel centres)."""
    rasToIjk = np.linalg.inv(ijkToRasMatrix(volumeNode))
    ijk = (rasToIjk @ np.array([*ras, 1.0]))[:3]
    return ijk[::-1]


def sliceAxisFromNormal(volumeNode, normalRas: Sequence[float]) -> int:
    """Array axis (0 = K, 1 = J, 2 = I) whose voxel direction is most parallel to a slice normal."""
    axes = ijkToRasMatrix(volumeNode)[:3, :3]
    axes = axes / np.linalg.norm(axes, axis=0)
    ijkAxis = int(np.argmax(np.abs(axes.T @ np.asarray(normalRas, dtype=float))))
    return 2 - ijkAxis


def sliceAxisFromViews(scene, volumeNode, ras: Sequence) -> Optional[int]:
    """The array axis of the first slice view (Red, Yellow, Green, others) whose plane holds ``ras``:
    one point or all of several (a view that crosses only the first point, e.g. after the
    user scrolled the one they clicked in, would pick an axis the other points are off)."""
    points = np.atleast_2d(np.asarray(ras, dtype=float))
    count = scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")
    nodes = [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode") for i in range(count)]
    order = {"Red": 0, "Yellow": 1, "Green": 2}
    spacing = min(np.linalg.norm(ijkToRasMatrix(volumeNode)[:3, :3], axis=0))
    for node in sorted(nodes, key=lambda n: order.get(n.GetLayoutName(), 3)):
        sliceToRas = node.GetSliceToRAS()
        normal = np.array([sliceToRas.GetElement(r, 2) for r in range(3)])
        origin = np.array([sliceToRas.GetElement(r, 3) for r in range(3)])
        if np.all(np.abs((points - origin) @ (normal / np.linalg.norm(normal))) <= 0.5 * spacing):
            return sliceAxisFromNormal(volumeNode, normal)
    return None


def _nearestVoxel(coords):
    """Voxel index holding continuous coordinates: halves round up, as Slicer's nearest-neighbour
    slice display does (np.round sends 2.5 to slice 2 but 3.5 to slice 4)."""
    return np.floor(np.asarray(coords, dtype=float) + 0.5)


def clicksOnSlice(volumeNode, positiveRas: Sequence, negativeRas: Sequence, axis: Optional[int] = None,
                  labels: Optional[Sequence[str]] = None) -> SliceClicks:
    """RAS clicks -> SliceClicks on one slice of ``volumeNode``.

    axis: array axis (0 = K, 1 = J, 2 = I) to slice along; None picks the axis along
    which the points spread least (K when tied, e.g. for one point). Raises
    PancakesInputError for points outside the volume or on different slices.
    """
    points = [(p, True) for p in positiveRas] + [(p, False) for p in negativeRas]
    if not points:
        raise PancakesInputError("no clicks: place at least one positive or negative point")
    dims = np.array(voxelArray(volumeNode).shape[:3])
    names = list(labels) if labels and len(labels) == len(points) else [f"point {n + 1}" for n in range(len(points))]
    coords = []
    for (ras, _), name in zip(points, names):
        kji = rasToArrayIndex(volumeNode, ras)
        if np.any(_nearestVoxel(kji) < 0) or np.any(_nearestVoxel(kji) >= dims):
            raise PancakesInputError(f"{name} at RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) is outside "
                                     f"volume '{volumeNode.GetName()}'")
        coords.append(kji)
    coords = np.array(coords)
    if axis is None:
        spread = np.ptp(coords, axis=0)
        axis = int(np.flatnonzero(spread <= spread.min() + 1e-6)[0])
    if axis not in (0, 1, 2):
        raise PancakesInputError(f"axis {axis!r}: use 0 (K), 1 (J) or 2 (I)")
    index = int(np.clip(_nearestVoxel(np.median(coords[:, axis])), 0, dims[axis] - 1))
    off = np.abs(coords[:, axis] - index)
    if off.max() > SLICE_TOLERANCE:
        where = sorted({int(v) for v in _nearestVoxel(coords[:, axis])})
        raise PancakesInputError(f"the points lie on different slices along {AXIS_NAMES[axis]} ({where}); "
                                 "place all clicks of one refinement on one slice")
    plane = [a for a in range(3) if a != axis]
    clicks = SliceClicks(axis, index)
    for (_, positive), c in zip(points, coords):
        rc = tuple(float(np.clip(c[a], 0, dims[a] - 1)) for a in plane)
        (clicks.positive if positive else clicks.negative).append(rc)
    return clicks


# ---- segment <-> voxel mask -------------------------------------------------------
def _requireUntransformed(node) -> None:
    if node.GetParentTransformNode() is not None:
        raise PancakesInputError(f"'{node.GetName()}' is under a transform; harden the transform before refining")


def segmentMask(segmentationNode, segmentId: str, volumeNode) -> np.ndarray:
    """A segment as bool (k, j, i) on the volume's voxel grid (nearest-neighbour resampled)."""
    ensureSegmentationConverters()
    segmentation = segmentationNode.GetSegmentation()
    segment = segmentation.GetSegment(segmentId)
    if segment is None:
        raise PancakesInputError(f"segment '{segmentId}' is not in '{segmentationNode.GetName()}'")
    reference = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volumeNode)
    shape = voxelArray(volumeNode).shape[:3]
    layer = slicer.vtkOrientedImageData()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, layer) \
            or layer.GetPointData().GetScalars() is None:
        return np.zeros(shape, bool)
    onGrid = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(layer, reference, onGrid)
    values = numpy_support.vtk_to_numpy(onGrid.GetPointData().GetScalars()).reshape(shape)
    # Segments share labelmap layers; this segment is its label value within its layer.
    return values == segment.GetLabelValue()


def _labelmapOnVolumeGrid(reference, mask: np.ndarray):
    """A uint8 vtkOrientedImageData holding ``mask`` (k, j, i) on ``reference``'s lattice."""
    image = slicer.vtkOrientedImageData()
    image.SetExtent(reference.GetExtent())
    matrix = vtk.vtkMatrix4x4()
    reference.GetImageToWorldMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    _scalars(image)[:] = np.ascontiguousarray(mask, np.uint8).ravel()
    return image


def _scalars(image) -> np.ndarray:
    """An image's voxels as a flat numpy view (VTK order: i fastest)."""
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())


def writeSegmentMask(segmentationNode, segmentId: str, volumeNode, mask: np.ndarray, axis: int,
                     slices: Sequence[int]) -> None:
    """Write ``mask`` (bool (k, j, i) on the volume's grid) into a segment on ``slices`` along ``axis``.

    The segment keeps everything else: what lies outside the volume (a segment drawn on
    a larger volume) and its own lattice on other slices. MODE_REPLACE replaces the
    whole segment (an extent only limits what is read), so the new segment is composed
    on the segment's lattice grown to hold the volume: the refined slab resampled there,
    the current segment elsewhere. Others lose the voxels it gains (Segment Editor default).
    """
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    resample = slicer.vtkOrientedImageDataResample
    reference = logic.CreateOrientedImageDataFromVolumeNode(volumeNode)
    slab = np.zeros(mask.shape, bool)
    index = [slice(None)] * 3
    index[axis] = slice(min(slices), max(slices) + 1)
    slab[tuple(index)] = True
    refinedImage, slabImage = _labelmapOnVolumeGrid(reference, mask), _labelmapOnVolumeGrid(reference, slab)
    current = slicer.vtkOrientedImageData()
    if logic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, current) \
            and current.GetPointData().GetScalars() is not None:
        label = segmentationNode.GetSegmentation().GetSegment(segmentId).GetLabelValue()
        image = slicer.vtkOrientedImageData()  # the segment's lattice, padded to hold the volume
        resample.ResampleOrientedImageToReferenceOrientedImage(refinedImage, current, image, False, True)
        onLattice = {}
        for name, source in (("current", current), ("slab", slabImage)):
            onLattice[name] = slicer.vtkOrientedImageData()
            resample.ResampleOrientedImageToReferenceOrientedImage(source, image, onLattice[name])
        inSlab = _scalars(onLattice["slab"]) != 0
        values = _scalars(image)
        values[:] = np.where(inSlab, values != 0, _scalars(onLattice["current"]) == label)
    else:  # an empty segment: nothing to keep
        image = refinedImage
    segmentation = segmentationNode.GetSegmentation()
    others = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
              if segmentation.GetNthSegmentID(i) != segmentId]
    # No extent (whole segment), no minimum overwrite, take voxels from all other segments.
    if not logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, logic.MODE_REPLACE,
                                            None, False, others):
        raise RuntimeError(f"could not update segment '{segmentId}' of '{segmentationNode.GetName()}'")


def _volumeSpacing(volumeNode) -> Tuple[float, float, float]:
    """Voxel size per array axis (k, j, i)."""
    return tuple(float(s) for s in np.linalg.norm(ijkToRasMatrix(volumeNode)[:3, :3], axis=0)[::-1])


# ---- the session ------------------------------------------------------------------
class RefineLogic:
    """Refinement sessions with undo. ``refiner``: a pancakes.Refiner (or anything with its
    ``refine_volume_slice``); None loads the bundled one on first use."""

    def __init__(self, refiner=None, device: str = "auto") -> None:
        self._refiner = refiner
        self._device = device
        self._seeds: Dict[tuple, np.ndarray] = {}  # session seed per (segmentation, segment, volume, axis, slice)
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

    @property
    def refiner(self):
        if self._refiner is None:
            from pancakes import Refiner

            self._refiner = Refiner.load(device=self._device)
        return self._refiner

    def refine(self, segmentationNode, segmentId: str, volumeNode, positiveNode=None, negativeNode=None,
               axis: Optional[int] = None, propagate: bool = False) -> RefineResult:
        """Refine ``segmentId`` on the slice that holds the clicks of the markups nodes.

        negativeNode None with a positiveNode: one mixed list (negatives by label or
        description). The same node passed twice counts as one mixed list too.
        """
        for node in (segmentationNode, volumeNode):
            _requireUntransformed(node)
        mixed = negativeNode is None or negativeNode is positiveNode
        pos, neg, labels = controlPointsRas(positiveNode, split=mixed)
        if not mixed:
            negPos, _, negLabels = controlPointsRas(negativeNode)
            neg, labels = neg + negPos, labels + negLabels
        if axis is None and (pos or neg) and volumeNode.GetScene() is not None:
            axis = sliceAxisFromViews(volumeNode.GetScene(), volumeNode, pos + neg)
        clicks = clicksOnSlice(volumeNode, pos, neg, axis, labels)
        current = segmentMask(segmentationNode, segmentId, volumeNode)
        key = (segmentationNode.GetID(), segmentId, volumeNode.GetID(), clicks.axis, clicks.index)
        currentSlice = np.take(current, clicks.index, axis=clicks.axis)
        # The seed stays the mask the session started from; the segment as it is now
        # (the last result, or the user's own edits) is the "previous" prediction.
        seedSlice = self._seeds.setdefault(key, currentSlice.copy())
        seed = current.copy()
        index = [slice(None)] * 3
        index[clicks.axis] = clicks.index
        seed[tuple(index)] = seedSlice
        refined, logits = self.refiner.refine_volume_slice(
            voxelArray(volumeNode), clicks.axis, clicks.index, seed, clicks.positive, clicks.negative,
            previous=self._previous(key, currentSlice, seedSlice), propagate=propagate,
            spacing=_volumeSpacing(volumeNode), with_logits=True)
        refined = np.asarray(refined, bool)
        self._lastLogits[key] = (logits, np.take(refined, clicks.index, axis=clicks.axis).copy())
        other = tuple(a for a in range(3) if a != clicks.axis)
        changed = [int(i) for i in np.flatnonzero((refined != current).any(axis=other))]
        if changed:
            self._saveForUndo(segmentationNode)
            writeSegmentMask(segmentationNode, segmentId, volumeNode, refined, clicks.axis, changed)
        return RefineResult(clicks.axis, clicks.index, changed, int((refined != current).sum()))

    def _previous(self, key: tuple, currentSlice: np.ndarray, seedSlice: np.ndarray) -> Optional[np.ndarray]:
        """What the refiner gets as its previous prediction for this slice [rows, cols].

        The last refine's logits while the segment still shows their mask; None while the
        slice is still its seed (the refiner then feeds the seed as trained: its seed prior);
        otherwise (undo, a manual edit) the segment as it is now.
        """
        last = self._lastLogits.get(key)
        if last is not None and np.array_equal(currentSlice, last[1]):
            return last[0]
        if np.array_equal(currentSlice, seedSlice):
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
        self._lastLogits.clear()
        for history in self._histories.values():
            history.SetSegmentation(None)  # stops observing the segmentation
        self._histories.clear()
        self._lastNode = None
