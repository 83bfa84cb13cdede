"""A segment's voxels, one slab at a time: read and write the slices of a segment on a volume's grid.

The refine session (RefineLogic) reads the clicked slice of a segment, and writes the
refined slice back, keeping the segment's ID, name and colour; the segment takes the
voxels it gains from other segments, as the Segment Editor does by default.

Usage::

    slab = segmentSlab(segmentationNode, "P03_L07", volumeNode, axis=0, start=30, stop=31)  # bool (1, j, i)
    writeSegmentSlab(segmentationNode, "P03_L07", volumeNode, slab, axis=0, start=30)
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from pancakes.errors import PancakesInputError

from .Segments import ensureSegmentationConverters
from .VolumeConversion import ijkToRasMatrix, voxelArray

# One update reads and writes one slice of the volume grid: a slab, the voxels whose
# index along one array axis lies in [start, stop). Nothing here walks the whole volume,
# so a click costs the same on a 512 x 512 x 200 CT as on a small volume.
BINARY_LABELMAP = "Binary labelmap"  # vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def transformToWorld(node) -> np.ndarray:
    """4x4 matrix from a node's local coordinates to world RAS, through its parent transforms (identity without
    one). Raises PancakesInputError under a non-linear transform: a slice of the voxels is then no plane in
    the views, and the clicks could not be placed on one."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise PancakesInputError(f"'{node.GetName()}' is under a non-linear transform ('{parent.GetName()}'); "
                                 "harden it before refining")
    matrix = vtk.vtkMatrix4x4()
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(parent, None, matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def requireSharedFrame(segmentationNode, volumeNode) -> None:
    """Refinement reads and writes a segment on the volume's voxel grid in the nodes' local coordinates, which
    is right when both lie in one frame: under the same linear transform (or transforms that agree), or none.
    Raises PancakesInputError naming both otherwise (a kept Pancakes segmentation always shares its volume's)."""
    toWorld = [transformToWorld(node) for node in (segmentationNode, volumeNode)]
    if not np.allclose(toWorld[0], toWorld[1], rtol=0, atol=1e-6):
        names = [node.GetParentTransformNode().GetName() if node.GetParentTransformNode() else "none"
                 for node in (segmentationNode, volumeNode)]
        raise PancakesInputError(f"segmentation '{segmentationNode.GetName()}' and volume '{volumeNode.GetName()}' "
                                 f"are under different transforms ('{names[0]}' and '{names[1]}'); put the "
                                 "segmentation under the volume's transform, or harden both, before refining")


def volumeVoxels(volumeNode) -> np.ndarray:
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


def _span(mask: np.ndarray) -> Optional[Tuple[List[int], List[int]]]:
    """(lowest, highest) index along each axis of the nonzero voxels of ``mask`` (k, j, i); None when empty.

    From the mask's projections on each axis, not np.nonzero: a click's update writes a slab of a
    512 x 512 slice, where listing every voxel's indices cost ~2 ms and the projections ~0.1 ms."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if not hit.size:
            return None
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]))
    return lo, hi


def _box(geometry, mask: np.ndarray, values: np.ndarray):
    """The voxels of ``values`` (k, j, i, on ``geometry``) within the bounding box of ``mask`` as
    an image; None when ``mask`` is empty. SetBinaryLabelmapToSegment pads the layer to hold
    the extent it is given and shrinks it back: given a whole slice it copies the whole layer."""
    span = _span(mask)
    if span is None:
        return None
    lo, hi = span
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
    dims = volumeVoxels(volumeNode).shape[:3]
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
    return segmentSlab(segmentationNode, segmentId, volumeNode, 0, 0, volumeVoxels(volumeNode).shape[0])


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
    dims = volumeVoxels(volumeNode).shape[:3]
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


def volumeSpacing(volumeNode) -> Tuple[float, float, float]:
    """Voxel size per array axis (k, j, i)."""
    return tuple(float(s) for s in np.linalg.norm(ijkToRasMatrix(volumeNode)[:3, :3], axis=0)[::-1])
