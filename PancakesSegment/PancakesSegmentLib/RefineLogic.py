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
An update reads, refines and writes that one slice, so its cost does not grow with
the volume (propagation to neighbouring slices reads the whole segment).

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
    dims = np.array(_voxels(volumeNode).shape[:3])
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
# One update reads and writes one slice of the volume grid: a slab, the voxels whose
# index along one array axis lies in [start, stop). Nothing here walks the whole volume,
# so a click costs the same on a 512 x 512 x 200 CT as on a small volume.
BINARY_LABELMAP = "Binary labelmap"  # vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def _requireUntransformed(node) -> None:
    if node.GetParentTransformNode() is not None:
        raise PancakesInputError(f"'{node.GetName()}' is under a transform; harden the transform before refining")


def _voxels(volumeNode) -> np.ndarray:
    """The volume's voxels (k, j, i) as a read-only view, not a copy (voxelArray copies the whole
    volume, ~100 MB for a CT); components last when there are several."""
    imageData = volumeNode.GetImageData()
    scalars = None if imageData is None or imageData.GetPointData() is None \
        else imageData.GetPointData().GetScalars()
    if scalars is None or 0 in imageData.GetDimensions() or imageData.GetNumberOfPoints() == 0:
        return voxelArray(volumeNode)  # raises its PancakesInputError naming what is missing
    dims = imageData.GetDimensions()
    components = imageData.GetNumberOfScalarComponents()
    view = numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1] + ((components,) if components > 1 else ()))
    view.flags.writeable = False
    return view


def _segment(segmentationNode, segmentId: str):
    ensureSegmentationConverters()
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is None:
        raise PancakesInputError(f"segment '{segmentId}' is not in '{segmentationNode.GetName()}'")
    return segment


def _layer(segment):
    """The labelmap layer holding ``segment``: the vtkOrientedImageData it shares with others
    (not a copy, which would cost a whole-volume copy per read); None when it holds no voxels."""
    layer = segment.GetRepresentation(BINARY_LABELMAP)
    if layer is None or layer.GetPointData() is None or layer.GetPointData().GetScalars() is None \
            or layer.IsEmpty():
        return None
    return layer


def _slabExtent(volumeNode, axis: int, start: int, stop: int) -> Tuple[int, int, int, int, int, int]:
    """IJK extent of the volume's voxels with index start..stop-1 along array ``axis`` (IJK axis 2 - axis)."""
    extent = list(volumeNode.GetImageData().GetExtent())
    ijk = 2 - axis
    extent[2 * ijk], extent[2 * ijk + 1] = extent[2 * ijk] + start, extent[2 * ijk] + stop - 1
    return tuple(extent)


def _shape(extent: Sequence[int]) -> Tuple[int, int, int]:
    """(k, j, i) array shape of an IJK extent."""
    return tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in (2, 1, 0))


def _geometry(source, extent: Sequence[int]):
    """A vtkOrientedImageData without voxels: the lattice of ``source`` (a volume node or an
    oriented image) restricted to ``extent``; a reference for resampling."""
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*extent)
    matrix = vtk.vtkMatrix4x4()
    if isinstance(source, slicer.vtkMRMLVolumeNode):
        source.GetIJKToRASMatrix(matrix)
    else:
        source.GetImageToWorldMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    return image


def _labelmap(geometry, values: np.ndarray):
    """A uint8 vtkOrientedImageData on ``geometry``'s lattice and extent holding ``values`` (k, j, i)."""
    image = _geometry(geometry, geometry.GetExtent())
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    _scalars(image)[:] = np.ascontiguousarray(values, np.uint8).ravel()
    return image


def _scalars(image) -> np.ndarray:
    """An image's voxels as a flat numpy view (VTK order: i fastest)."""
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())


def _resampled(image, reference) -> np.ndarray:
    """``image`` nearest-neighbour resampled onto ``reference``'s lattice and extent -> (k, j, i) values.
    Only the reference extent is computed: cropping a layer to one slice costs one slice."""
    out = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(image, reference, out)
    return _scalars(out).reshape(_shape(reference.GetExtent()))


def _onLattice(lattice, block, covered=None) -> Tuple[object, np.ndarray, Optional[np.ndarray]]:
    """``block`` (a uint8 image on another lattice) carried onto ``lattice``'s grid -> (the lattice
    restricted to the block's bounding box there, the block's values there (k, j, i), where
    ``covered`` (an image like ``block``) is nonzero there, or None without it).

    Each lattice voxel takes its nearest voxel of the block; VTK gives the background (0) to
    points beyond the block's extent, even those whose nearest voxel is on its border. On the
    block's own lattice (the usual case) this is the block itself.
    """
    out = slicer.vtkOrientedImageData()
    # padImage: the output's extent grows from nothing to hold the block's bounding box.
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        block, _geometry(lattice, (0, -1, 0, -1, 0, -1)), out, False, True)
    geometry = _geometry(lattice, out.GetExtent())
    inside = None if covered is None else _resampled(covered, geometry) != 0
    return geometry, _scalars(out).reshape(_shape(out.GetExtent())), inside


def _box(geometry, mask: np.ndarray, values: np.ndarray):
    """The voxels of ``values`` (k, j, i, on ``geometry``) within the bounding box of ``mask`` as
    an image; None when ``mask`` is empty. SetBinaryLabelmapToSegment pads the layer to hold
    the extent it is given and shrinks it back: given a whole slice it copies the whole layer."""
    where = np.nonzero(mask)
    if not where[0].size:
        return None
    lo, hi = [int(w.min()) for w in where], [int(w.max()) for w in where]
    extent = list(geometry.GetExtent())
    for a, ijk in enumerate((2, 1, 0)):
        offset = extent[2 * ijk]
        extent[2 * ijk], extent[2 * ijk + 1] = offset + lo[a], offset + hi[a]
    block = values[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    return _labelmap(_geometry(geometry, extent), block)


def _merge(segmentationNode, segmentId: str, mode: int, image) -> None:
    """SetBinaryLabelmapToSegment limited to ``image``'s extent.

    Measured with slicer-core (5.x): MODE_MERGE_MASK gives the segment every voxel where
    ``image`` is nonzero, MODE_MERGE_MIN takes from it every voxel where ``image`` is zero,
    both inside the extent only. Listing every other segment as overwritable makes MASK take
    the voxels from the segments of the same layer (the layer holds one label per voxel),
    and keeps both modes from moving the segment to a layer of its own; segments in other
    layers are left as they are. (MODE_MERGE_MAX writes the raw maximum of label values into
    a shared layer, and MODE_REPLACE replaces the whole segment even with an extent.)
    """
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    segmentation = segmentationNode.GetSegmentation()
    others = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
              if segmentation.GetNthSegmentID(i) != segmentId]
    if not logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, mode, image.GetExtent(), False, others):
        raise RuntimeError(f"could not update segment '{segmentId}' of '{segmentationNode.GetName()}'")


def segmentSlab(segmentationNode, segmentId: str, volumeNode, axis: int, start: int, stop: int) -> np.ndarray:
    """A segment as bool (k, j, i) on the volume's voxel grid, slices start..stop-1 along array
    ``axis`` only (nearest-neighbour resampled): the volume's shape with stop - start along axis."""
    segment = _segment(segmentationNode, segmentId)
    dims = _voxels(volumeNode).shape[:3]
    if axis not in (0, 1, 2) or not 0 <= start < stop <= dims[axis]:
        raise PancakesInputError(f"slices {start}..{stop - 1} along axis {axis!r} are not in volume "
                                 f"'{volumeNode.GetName()}' of shape {dims}")
    reference = _geometry(volumeNode, _slabExtent(volumeNode, axis, start, stop))
    layer = _layer(segment)
    if layer is None:
        return np.zeros(_shape(reference.GetExtent()), bool)
    # Segments share labelmap layers; this segment is its label value within its layer.
    return _resampled(layer, reference) == segment.GetLabelValue()


def segmentMask(segmentationNode, segmentId: str, volumeNode) -> np.ndarray:
    """A segment as bool (k, j, i) on the volume's whole voxel grid (nearest-neighbour resampled)."""
    return segmentSlab(segmentationNode, segmentId, volumeNode, 0, 0, _voxels(volumeNode).shape[0])


def writeSegmentSlab(segmentationNode, segmentId: str, volumeNode, slab: np.ndarray, axis: int, start: int) -> None:
    """Write ``slab`` (bool (k, j, i): the volume's grid on slices start.. along array ``axis``) into a segment.

    The segment changes only there and keeps everything else: what lies outside the volume
    (a segment drawn on a larger volume) and its own lattice on other slices. It takes the
    voxels it gains from the other segments, as the Segment Editor does by default (overwrite
    all segments): those of its layer through SetBinaryLabelmapToSegment, those of other
    layers (overlapping segments) explicitly. Cost: the slab, not the volume: the segment's
    layer is only read and written within the bounding box of the voxels that change.
    """
    segment = _segment(segmentationNode, segmentId)
    segmentation = segmentationNode.GetSegmentation()
    dims = _voxels(volumeNode).shape[:3]
    slab = np.asarray(slab)
    if axis not in (0, 1, 2) or slab.ndim != 3 or slab.shape[axis] == 0 \
            or any(slab.shape[a] != dims[a] for a in range(3) if a != axis) \
            or not 0 <= start <= dims[axis] - slab.shape[axis]:
        raise PancakesInputError(f"a slab of shape {slab.shape} from slice {start} along axis {axis!r} does not fit "
                                 f"volume '{volumeNode.GetName()}' of shape {dims}")
    stop = start + slab.shape[axis]
    layer = _layer(segment)
    if layer is None:  # an empty layer: the segment is the slab's voxels, on the volume's lattice
        geometry, new = _geometry(volumeNode, _slabExtent(volumeNode, axis, start, stop)), slab != 0
        current = np.zeros(new.shape, bool)
    else:  # on the layer's lattice: the slab where it reaches, the segment as it is elsewhere
        # The slab and a slice on each side that covers nothing: each lattice voxel then takes
        # its nearest voxel of the volume, as from the whole volume, where the slab alone would
        # leave out those half a voxel off it (beyond its extent for VTK).
        lo, hi = max(0, start - 1), min(dims[axis], stop + 1)
        block = _geometry(volumeNode, _slabExtent(volumeNode, axis, lo, hi))
        pad = [(0, 0)] * 3
        pad[axis] = (start - lo, hi - stop)
        geometry, values, inside = _onLattice(layer, _labelmap(block, np.pad(slab != 0, pad)),
                                              _labelmap(block, np.pad(np.ones(slab.shape, np.uint8), pad)))
        current = _resampled(layer, geometry) == segment.GetLabelValue()
        new = np.where(inside, values != 0, current)
    removed, gained = current & ~new, new & ~current
    image = _box(geometry, removed, (~removed).astype(np.uint8))
    if image is not None:
        _merge(segmentationNode, segmentId, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MIN, image)
    image = _box(geometry, gained, gained)
    if image is None:
        return
    _merge(segmentationNode, segmentId, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MASK, image)
    # Segments of other layers may overlap this one; they lose what it gained (not what it already held).
    # Padded by a voxel that holds nothing, so that no point half a voxel off it is missed.
    padded = _geometry(geometry, [e + (1 if n % 2 else -1) for n, e in enumerate(geometry.GetExtent())])
    gainedImage = _labelmap(padded, np.pad(gained, 1))
    ownLayer = segmentation.GetLayerIndex(segmentId, BINARY_LABELMAP)
    for layerIndex in range(segmentation.GetNumberOfLayers(BINARY_LABELMAP)):
        otherLayer = segmentation.GetLayerDataObject(layerIndex, BINARY_LABELMAP)
        if layerIndex == ownLayer or otherLayer is None or otherLayer.IsEmpty():
            continue
        otherGeometry, otherGained, _ = _onLattice(otherLayer, gainedImage)
        otherGained = otherGained != 0
        labels = _resampled(otherLayer, otherGeometry)
        for otherId in segmentation.GetSegmentIDsForLayer(layerIndex, BINARY_LABELMAP):
            lost = otherGained & (labels == segmentation.GetSegment(otherId).GetLabelValue())
            image = _box(otherGeometry, lost, (~lost).astype(np.uint8))
            if image is not None:
                _merge(segmentationNode, otherId, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MIN, image)


def writeSegmentMask(segmentationNode, segmentId: str, volumeNode, mask: np.ndarray, axis: int,
                     slices: Sequence[int]) -> None:
    """Write ``mask`` (bool (k, j, i) on the volume's whole grid) into a segment on ``slices`` along
    ``axis`` (the slab min(slices)..max(slices)); see writeSegmentSlab."""
    start, stop = min(slices), max(slices) + 1
    index = [slice(None)] * 3
    index[axis] = slice(start, stop)
    writeSegmentSlab(segmentationNode, segmentId, volumeNode, np.asarray(mask)[tuple(index)], axis, start)


def _volumeSpacing(volumeNode) -> Tuple[float, float, float]:
    """Voxel size per array axis (k, j, i)."""
    return tuple(float(s) for s in np.linalg.norm(ijkToRasMatrix(volumeNode)[:3, :3], axis=0)[::-1])


# ---- the session ------------------------------------------------------------------
class RefineLogic:
    """Refinement sessions with undo. ``refiner``: a pancakes.Refiner (or anything with its
    ``volume_window``, ``refine_slice_of_volume`` and, for propagation, ``refine_volume_slice``);
    None loads the bundled one on first use."""

    def __init__(self, refiner=None, device: str = "auto") -> None:
        self._refiner = refiner
        self._device = device
        self._seeds: Dict[tuple, np.ndarray] = {}  # session seed per (segmentation, segment, volume, axis, slice)
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

    @property
    def refiner(self):
        if self._refiner is None:
            from pancakes import Refiner

            self._refiner = Refiner.load(device=self._device)
        return self._refiner

    def prepare(self, volumeNode) -> None:
        """Pay a session's one-off costs before its first click: load the refiner, compute the
        volume's intensity window and run the network once (TorchScript optimises its first
        runs). Without this the first click of a CT took ~250 ms against ~45 for the next ones.
        Raises PancakesInputError for a volume that cannot be refined (empty, constant)."""
        _requireUntransformed(volumeNode)
        voxels = _voxels(volumeNode)
        window = self._window(volumeNode, voxels)
        empty = np.zeros(voxels.shape[1:3], bool)
        for _ in range(2):  # the profiling executor specialises on the second run
            self.refiner.refine_slice_of_volume(voxels, 0, voxels.shape[0] // 2, empty, [], [], window=window)

    def refine(self, segmentationNode, segmentId: str, volumeNode, positiveNode=None, negativeNode=None,
               axis: Optional[int] = None, propagate: bool = False) -> RefineResult:
        """Refine ``segmentId`` on the slice that holds the clicks of the markups nodes.

        negativeNode None with a positiveNode: one mixed list (negatives by label or
        description). The same node passed twice counts as one mixed list too. Without
        ``propagate`` an update reads, refines and writes that one slice only; with it the
        refined slice spreads to its neighbours, which reads the whole segment.
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
        key = (segmentationNode.GetID(), segmentId, volumeNode.GetID(), clicks.axis, clicks.index)
        refine = self._refinePropagated if propagate else self._refineSlice
        return refine(segmentationNode, segmentId, volumeNode, clicks, key)

    def _refineSlice(self, segmentationNode, segmentId: str, volumeNode, clicks: SliceClicks,
                     key: tuple) -> RefineResult:
        """The clicked slice read, refined and written: the cost of one slice, whatever the volume."""
        a, index = clicks.axis, clicks.index
        currentSlice = np.take(segmentSlab(segmentationNode, segmentId, volumeNode, a, index, index + 1), 0, axis=a)
        seedSlice, previous = self._seedAndPrevious(key, currentSlice)
        voxels = _voxels(volumeNode)
        logits = self.refiner.refine_slice_of_volume(
            voxels, a, index, seedSlice, clicks.positive, clicks.negative, previous=previous,
            spacing=_volumeSpacing(volumeNode), window=self._window(volumeNode, voxels))
        refinedSlice = np.asarray(logits) > 0
        self._lastLogits[key] = (logits, refinedSlice)
        voxelsChanged = int((refinedSlice != currentSlice).sum())
        if voxelsChanged:
            self._saveForUndo(segmentationNode)
            writeSegmentSlab(segmentationNode, segmentId, volumeNode, np.expand_dims(refinedSlice, a), a, index)
        return RefineResult(a, index, [index] if voxelsChanged else [], voxelsChanged)

    def _refinePropagated(self, segmentationNode, segmentId: str, volumeNode, clicks: SliceClicks,
                          key: tuple) -> RefineResult:
        """The clicked slice refined and spread to its neighbours: the whole segment is read, as
        refine_volume_slice takes the 3D seed, and the slab of changed slices written."""
        a, index = clicks.axis, clicks.index
        current = segmentMask(segmentationNode, segmentId, volumeNode)
        seedSlice, previous = self._seedAndPrevious(key, np.take(current, index, axis=a))
        seed = current.copy()
        where = [slice(None)] * 3
        where[a] = index
        seed[tuple(where)] = seedSlice
        refined, logits = self.refiner.refine_volume_slice(
            _voxels(volumeNode), a, index, seed, clicks.positive, clicks.negative, previous=previous,
            propagate=True, spacing=_volumeSpacing(volumeNode), with_logits=True)
        refined = np.asarray(refined, bool)
        self._lastLogits[key] = (logits, np.take(refined, index, axis=a).copy())
        other = tuple(b for b in range(3) if b != a)
        changed = [int(i) for i in np.flatnonzero((refined != current).any(axis=other))]
        if changed:
            self._saveForUndo(segmentationNode)
            writeSegmentMask(segmentationNode, segmentId, volumeNode, refined, a, changed)
        return RefineResult(a, index, changed, int((refined != current).sum()))

    def _seedAndPrevious(self, key: tuple, currentSlice: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The session's seed of this slice and what the refiner gets as previous, both [rows, cols]."""
        # The seed stays the mask the session started from; the segment as it is now
        # (the last result, or the user's own edits) is the "previous" prediction.
        seedSlice = self._seeds.setdefault(key, currentSlice.copy())
        return seedSlice, self._previous(key, currentSlice, seedSlice)

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
