"""Reading and writing a segment slab by slab: segments larger than the volume, other lattices, other layers."""
from __future__ import annotations

import numpy as np
import pytest
from refine_scene import (  # noqa: F401  (fixtures are used by name)
    PatternRefiner,
    RefineLogic,
    SHAPE,
    addVolume,
    imageFromVolumeNode,
    markups,
    masks,
    ras,
    scene,
    segmentation,
    volume,
)
from refine_scene import slicer
from refine_scene import sitk


def labelmapOn(volume, mask):
    """A uint8 vtkOrientedImageData holding ``mask`` (k, j, i) on the volume's grid."""
    from vtk.util import numpy_support
    import vtk

    image = slicer.vtkOrientedImageData()
    image.SetExtent(volume.GetImageData().GetExtent())
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = mask.astype(np.uint8).ravel()
    return image


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_one_slice_of_a_segment_larger_than_the_volume_changes_that_slice_only(scene, segmentation, axis):
    # The segment lies on the rotated volume's lattice; refining on a crop of it must write the
    # crop's slice there exactly, leave the segment beyond the crop and on every other slice as
    # it was, and take from L02 exactly the voxels L01 gains there.
    source = scene.GetFirstNodeByName("rotated")
    cropped = addVolume(scene, "cropped", imageFromVolumeNode(source)[:, 3:15, 1:5])
    offset = (1, 3, 0)  # source (k, j, i) = cropped (k, j, i) + offset
    point = (2, 10, 7)  # in the crop: source (3, 13, 7), in L02
    before = masks(segmentation, source)
    refiner = PatternRefiner()
    result = RefineLogic(refiner).refine(segmentation, "P01_L01", cropped,
                                         markups(scene, [ras(cropped, *point)]), axis=axis)
    assert (result.axis, result.index, result.changedSlices) == (axis, point[axis], [point[axis]])
    call = refiner.calls[0]
    region = [slice(o, o + n) for o, n in zip(offset, (4, 12, 20))]
    region[axis] = offset[axis] + point[axis]
    np.testing.assert_array_equal(call["seed"], before["P01_L01"][tuple(region)])  # the slice as read
    refined = before["P01_L01"].copy()
    refined[tuple(region)] = PatternRefiner.pattern(call["seed"].shape)
    gained = refined & ~before["P01_L01"]
    assert (gained & before["P01_L02"]).any()
    assert (before["P01_L01"] & ~refined).any() or axis == 1  # source row 13 holds no L01 to lose
    expected = {sid: mask & ~gained for sid, mask in before.items()}
    expected["P01_L01"] = refined
    after = masks(segmentation, source)
    for sid in before:
        np.testing.assert_array_equal(after[sid], expected[sid], err_msg=sid)
    assert result.voxelsChanged == int((refined != before["P01_L01"]).sum())


def nearestVoxels(volume, other):
    """For each voxel of ``volume``'s grid, the (k, j, i) of the voxel of ``other`` that VTK's
    nearest-neighbour resampling of the whole of ``other`` gives it (-1 outside ``other``):
    what the whole-volume path wrote there, ties (half-way points) included."""
    from vtk.util import numpy_support
    import vtk

    shape = sitk.GetArrayFromImage(imageFromVolumeNode(other)).shape
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volume.GetImageData().GetExtent())
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    reference.SetImageToWorldMatrix(matrix)
    nearest = []
    for axis in range(3):
        index = slicer.vtkOrientedImageData()
        index.SetExtent(other.GetImageData().GetExtent())
        other.GetIJKToRASMatrix(matrix)
        index.SetImageToWorldMatrix(matrix)
        index.AllocateScalars(vtk.VTK_UNSIGNED_SHORT, 1)
        numpy_support.vtk_to_numpy(index.GetPointData().GetScalars())[:] = (np.indices(shape)[axis] + 1).ravel()
        out = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(index, reference, out)
        nearest.append(numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(SHAPE).astype(int) - 1)
    return np.array(nearest)


def otherLattice(volume, kind):
    """``volume`` resampled onto a tilted grid of other spacing, or onto one twice as coarse along K
    and J, whose slices fall half-way between the volume's: the ties of nearest-neighbour resampling."""
    source = imageFromVolumeNode(volume)
    if kind == "tilted":
        grid = sitk.Image([14, 20, 8], sitk.sitkFloat32)
        grid.SetSpacing((1.1, 0.9, 1.9))
        grid.SetOrigin(tuple(np.array(source.GetOrigin()) + (1.5, -2.0, 0.7)))
        tilt = np.array(sitk.VersorTransform((0.3, 0.5, 0.8), 0.35).GetMatrix()).reshape(3, 3)
        grid.SetDirection(tuple((tilt @ np.array(source.GetDirection()).reshape(3, 3)).ravel()))
    else:
        grid = sitk.Image([20, 12, 3], sitk.sitkFloat32)
        grid.SetSpacing((1.2, 1.4, 6.0))
        grid.SetOrigin(source.GetOrigin())
        grid.SetDirection(source.GetDirection())
    return addVolume(scene=volume.GetScene(), name=kind, image=sitk.Resample(source, grid))


@pytest.mark.parametrize("kind, axis, index", [("tilted", 0, 3), ("tilted", 1, 10), ("tilted", 2, 5),
                                               ("coarse", 0, 1), ("coarse", 1, 7)])
def test_a_segment_on_another_lattice_changes_where_the_slice_is_the_nearest_voxel(scene, volume, segmentation,
                                                                                    kind, axis, index):
    # Refined on a volume of another grid, each voxel of the segment's own lattice takes the
    # refined value of its nearest voxel of that volume when that voxel is on the slice, as
    # writing through the whole volume did; ties go where whole-volume resampling sends them.
    other = otherLattice(volume, kind)
    before = masks(segmentation, volume)
    refiner = PatternRefiner()
    point = [1, 5, 7]
    point[axis] = index
    result = RefineLogic(refiner).refine(segmentation, "P01_L02", other, markups(scene, [ras(other, *point)]),
                                         axis=axis)
    assert (result.axis, result.index) == (axis, index)
    pattern = PatternRefiner.pattern(refiner.calls[0]["seed"].shape)
    nearest = nearestVoxels(volume, other)
    plane = [a for a in range(3) if a != axis]
    onSlice = (nearest[axis] == index) & np.all(nearest >= 0, axis=0)
    expected = before["P01_L02"].copy()
    expected[onSlice] = pattern[nearest[plane[0]][onSlice], nearest[plane[1]][onSlice]]
    gained = expected & ~before["P01_L02"]
    assert onSlice.sum() > 50 and gained.any()
    after = masks(segmentation, volume)
    np.testing.assert_array_equal(after["P01_L02"], expected)
    np.testing.assert_array_equal(after["P01_L01"], before["P01_L01"] & ~gained)


def test_an_overlapping_segment_of_another_layer_loses_only_the_voxels_gained(scene, volume, segmentation):
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    seg = segmentation.GetSegmentation()
    overlap = np.zeros(SHAPE, bool)
    overlap[:, 2:9, 2:14] = True  # over L01 (rows 5..11, cols 4..9) on every slice
    # Written without overwriting: L03 keeps the overlap and moves to a layer of its own.
    assert logic.SetBinaryLabelmapToSegment(labelmapOn(volume, overlap), segmentation, "P01_L03", logic.MODE_REPLACE)
    assert seg.GetNumberOfLayers() == 2
    before = masks(segmentation, volume)
    assert (before["P01_L01"] & before["P01_L03"]).any()
    RefineLogic(PatternRefiner()).refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 3, 6, 5)]))
    refined = before["P01_L01"].copy()
    refined[3] = PatternRefiner.pattern(SHAPE[1:])
    gained = refined & ~before["P01_L01"]
    assert (gained & before["P01_L03"]).any() and (gained & before["P01_L02"]).any()
    after = masks(segmentation, volume)
    np.testing.assert_array_equal(after["P01_L01"], refined)
    np.testing.assert_array_equal(after["P01_L02"], before["P01_L02"] & ~gained)
    # What L01 already held stays shared with L03; only the voxels it gained leave L03.
    np.testing.assert_array_equal(after["P01_L03"], before["P01_L03"] & ~gained)
    assert seg.GetNumberOfLayers() == 2


@pytest.mark.parametrize("shape, boxes", [
    ((3, 40, 50), [((1, 5, 7), (1, 9, 30))]),
    ((3, 40, 50), [((0, 0, 0), (0, 0, 0)), ((2, 39, 49), (2, 39, 49))]),  # the corners: the whole block
    ((1, 16, 16), [((0, 3, 3), (0, 3, 3))]),  # one voxel
])
def test_the_written_block_spans_exactly_the_voxels_that_change(shape, boxes):
    # The block handed to SetBinaryLabelmapToSegment is the bounding box of the changing voxels: any
    # smaller and a change is lost, any larger and the layer is copied for nothing.
    from PancakesSegmentLib.SegmentSlabs import _span

    mask = np.zeros(shape, bool)
    for lo, hi in boxes:
        mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = True
    where = np.nonzero(mask)
    assert _span(mask) == ([int(w.min()) for w in where], [int(w.max()) for w in where])
    assert _span(np.zeros(shape, bool)) is None
