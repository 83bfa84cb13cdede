"""Click refinement on a real MRML scene (slicer-core): markups RAS -> voxel clicks -> segment on one slice."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.RefineLogic import (  # noqa: E402
    RefineLogic,
    clicksOnSlice,
    isNegativePoint,
    rasToArrayIndex,
    segmentMask,
    segmentSlab,
    sliceAxisFromViews,
    writeSegmentMask,
    writeSegmentSlab,
)
from PancakesSegmentLib.Segments import createSegmentationNode, fillSegmentation  # noqa: E402
from PancakesSegmentLib.SelfTest import addVolume, rotatedDirection, syntheticImage  # noqa: E402
from PancakesSegmentLib.VolumeConversion import ijkToRasMatrix, imageFromVolumeNode  # noqa: E402
from pancakes.errors import PancakesInputError  # noqa: E402

torch.set_num_threads(1)
SHAPE = (6, 24, 20)  # (k, j, i)


class ClickStampRefiner:
    """Test double with the Refiner's volume API: sets the voxel nearest each positive click,
    clears it at negative clicks, and records its calls, so geometry can be checked exactly."""

    def __init__(self) -> None:
        self.calls = []
        self.windows = []  # the volumes volume_window was asked about

    LOGIT = 4.5  # the slice logits it returns: +LOGIT inside its result, -LOGIT outside

    def volume_window(self, volume):
        self.windows.append(np.array(volume, copy=True))
        return float(np.nanmin(volume)), float(np.nanmax(volume))

    def refine_slice_of_volume(self, volume, axis, index, seed_slice, positive, negative, previous=None,
                               spacing=None, window=None):
        """The clicked slice's logits [rows, cols] (its seed stamped with the clicks)."""
        self.calls.append(dict(axis=axis, index=index, seed=np.array(seed_slice, copy=True),
                               positive=list(positive), negative=list(negative), previous=previous,
                               spacing=spacing, window=window))
        seed = np.expand_dims(np.asarray(seed_slice, bool), axis)
        out = self._stamp(axis, 0, seed, positive, negative)
        return np.where(np.take(out, 0, axis=axis), self.LOGIT, -self.LOGIT).astype(np.float32)

    def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                            propagate=False, spacing=None, with_logits=False):
        self.calls.append(dict(axis=axis, index=index, seed=np.take(seed, index, axis=axis).copy(),
                               positive=list(positive), negative=list(negative), previous=previous,
                               spacing=spacing, propagate=propagate))
        out = self._stamp(axis, index, seed, positive, negative)
        logits = np.where(np.take(out, index, axis=axis), self.LOGIT, -self.LOGIT).astype(np.float32)
        return (out, logits) if with_logits else out

    @staticmethod
    def _stamp(axis, index, seed, positive, negative):
        out = seed.copy()
        for clicks, value in ((positive, True), (negative, False)):
            for r, c in clicks:
                voxel = [0, 0, 0]
                voxel[axis] = index
                plane = [a for a in range(3) if a != axis]
                voxel[plane[0]], voxel[plane[1]] = int(round(r)), int(round(c))
                out[tuple(voxel)] = value
        return out


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def volume(scene):
    """Rotated about two axes, anisotropic (1.2, 0.7, 3.0) mm, off-origin."""
    return addVolume(scene, "rotated", syntheticImage(SHAPE, (1.2, 0.7, 3.0), rotatedDirection(), (5, -3, 7), seed=3))


@pytest.fixture
def segmentation(scene, volume):
    """Protocol segmentation of 3 labels: L01 rows 5..11, L02 rows 12..19 (cols 4..9), L03 empty."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 5:12, 4:10] = 1
    labels[:, 12:20, 4:10] = 2
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(imageFromVolumeNode(volume))
    node = createSegmentationNode(scene, volume, "seg")
    fillSegmentation(node, volume, image, 4, 3, 0)
    return node


@pytest.fixture
def tiny_refiner(tmp_path):
    """A real Refiner with a small untrained network (its logits depend on every input)."""
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.refine import Refiner
    from pancakes.modeling.refine_net import RefineNet

    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    return Refiner.load(path, device="cpu")


def ras(volume, k, j, i):
    return (ijkToRasMatrix(volume) @ np.array([i, j, k, 1.0]))[:3]


def markups(scene, points, descriptions=None):
    node = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(node)
    for n, p in enumerate(points):
        idx = node.AddControlPoint([float(v) for v in p], f"F-{n + 1}")
        if descriptions:
            node.SetNthControlPointDescription(idx, descriptions[n])
    return node


def masks(segmentation, volume):
    seg = segmentation.GetSegmentation()
    return {seg.GetNthSegmentID(i): segmentMask(segmentation, seg.GetNthSegmentID(i), volume)
            for i in range(seg.GetNumberOfSegments())}


def test_ras_to_voxel_on_a_rotated_anisotropic_volume(volume):
    for kji in [(0, 0, 0), (3, 10, 7), (5, 23, 19)]:
        np.testing.assert_allclose(rasToArrayIndex(volume, ras(volume, *kji)), kji, atol=1e-9)


def test_click_lands_on_its_voxel_and_only_that_slice_changes(scene, volume, segmentation):
    before = masks(segmentation, volume)
    seg = segmentation.GetSegmentation()
    names = {i: (seg.GetSegment(i).GetName(), seg.GetSegment(i).GetColor()) for i in before}
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    # (3, 14, 7) belongs to L02: a positive click for L01 there takes it over.
    result = logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 3, 14, 7)]),
                          markups(scene, [ras(volume, 3, 6, 5)]))
    call = refiner.calls[0]
    assert (call["axis"], call["index"]) == (0, 3)
    np.testing.assert_allclose(call["positive"], [(14, 7)], atol=1e-6)
    np.testing.assert_allclose(call["negative"], [(6, 5)], atol=1e-6)
    np.testing.assert_allclose(call["spacing"], (3.0, 0.7, 1.2), atol=1e-9)
    after = masks(segmentation, volume)
    l1, l2 = after["P01_L01"], after["P01_L02"]
    assert l1[3, 14, 7] and not l1[3, 6, 5]
    assert not l2[3, 14, 7]  # the gained voxel left the other segment
    assert result.changedSlices == [3] and result.voxelsChanged == 2
    for sid in before:
        other = np.ones(SHAPE[0], bool)
        other[3] = False
        np.testing.assert_array_equal(after[sid][other], before[sid][other])
    assert [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())] == ["P01_L01", "P01_L02", "P01_L03"]
    assert {i: (seg.GetSegment(i).GetName(), seg.GetSegment(i).GetColor()) for i in before} == names


def test_chosen_axis_slices_across(scene, volume, segmentation):
    refiner = ClickStampRefiner()
    before = masks(segmentation, volume)["P01_L03"]
    RefineLogic(refiner).refine(segmentation, "P01_L03", volume, markups(scene, [ras(volume, 2, 5, 9)]), axis=1)
    call = refiner.calls[0]
    assert (call["axis"], call["index"]) == (1, 5)
    np.testing.assert_allclose(call["positive"], [(2, 9)], atol=1e-6)
    after = masks(segmentation, volume)["P01_L03"]
    assert after[2, 5, 9] and not before.any()
    assert after.sum() == 1


def test_axis_is_found_from_the_points_and_from_slice_views(scene, volume):
    # Two points sharing j only: the slice is J = 5.
    clicks = clicksOnSlice(volume, [ras(volume, 1, 5, 3), ras(volume, 4, 5, 8)], [])
    assert (clicks.axis, clicks.index) == (1, 5)
    np.testing.assert_allclose(clicks.positive, [(1, 3), (4, 8)], atol=1e-6)
    # A slice view whose plane is the volume's I = 12 plane.
    sliceNode = slicer.vtkMRMLSliceNode()
    sliceNode.SetLayoutName("Yellow")
    scene.AddNode(sliceNode)
    m = ijkToRasMatrix(volume)
    normal, transverse = m[:3, 0], m[:3, 1]
    origin = ras(volume, 0, 0, 12)
    sliceNode.SetSliceToRASByNTP(*normal, *transverse, *origin, 0)
    assert sliceAxisFromViews(scene, volume, ras(volume, 2, 7, 12)) == 2
    assert sliceAxisFromViews(scene, volume, ras(volume, 2, 7, 5)) is None


def test_mixed_list_uses_labels_or_descriptions():
    assert isNegativePoint("-1", "") and isNegativePoint("F-1", "negative") and isNegativePoint("bg", "Background")
    assert not isNegativePoint("F-1", "") and not isNegativePoint("F-2", "positive")


def test_one_mixed_list(scene, volume, segmentation):
    refiner = ClickStampRefiner()
    node = markups(scene, [ras(volume, 4, 14, 7), ras(volume, 4, 6, 5)], ["", "negative"])
    RefineLogic(refiner).refine(segmentation, "P01_L01", volume, node)
    call = refiner.calls[0]
    np.testing.assert_allclose(call["positive"], [(14, 7)], atol=1e-6)
    np.testing.assert_allclose(call["negative"], [(6, 5)], atol=1e-6)


def test_bad_clicks_are_reported(scene, volume, segmentation):
    logic = RefineLogic(ClickStampRefiner())
    outside = ras(volume, 3, 30, 7)
    with pytest.raises(PancakesInputError, match="F-1 at RAS .* is outside volume 'rotated'"):
        logic.refine(segmentation, "P01_L01", volume, markups(scene, [outside]))
    with pytest.raises(PancakesInputError, match="different slices along K"):
        logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 1, 5, 3), ras(volume, 4, 9, 8)]), axis=0)
    with pytest.raises(PancakesInputError, match="no clicks"):
        logic.refine(segmentation, "P01_L01", volume, markups(scene, []))
    with pytest.raises(PancakesInputError, match="segment 'nope'"):
        logic.refine(segmentation, "nope", volume, markups(scene, [ras(volume, 1, 5, 3)]))


def _two_clicks_on_slice_3(scene, volume, segmentation, logic):
    """Two positive points on slice 3 of segment P01_L01, refined one after the other -> the markups node."""
    node = markups(scene, [ras(volume, 3, 14, 7)])
    logic.refine(segmentation, "P01_L01", volume, node)
    node.AddControlPoint([float(v) for v in ras(volume, 3, 16, 8)], "F-2")
    logic.refine(segmentation, "P01_L01", volume, node)
    return node


def test_undo_restores_every_segment_and_the_session_keeps_its_seed(scene, volume, segmentation):
    before = masks(segmentation, volume)
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    _two_clicks_on_slice_3(scene, volume, segmentation, logic)
    second = refiner.calls[1]
    # The first step has no result yet: the refiner is left to feed the seed (its seed prior).
    assert refiner.calls[0]["previous"] is None
    # The seed is the mask the session started from; the last result's logits are "previous".
    np.testing.assert_array_equal(second["seed"], before["P01_L01"][3])
    assert second["previous"][14, 7] == ClickStampRefiner.LOGIT
    refined = masks(segmentation, volume)
    assert logic.undo() and logic.undo() and not logic.undo()
    after = masks(segmentation, volume)
    for sid in before:
        np.testing.assert_array_equal(after[sid], before[sid])
    # Redo walks forward again, as the Segment Editor's history does.
    assert logic.canRedo() and logic.redo() and logic.redo() and not logic.redo()
    for sid, mask in masks(segmentation, volume).items():
        np.testing.assert_array_equal(mask, refined[sid])
    logic.finish()
    assert not logic.canUndo() and not logic.canRedo()


def test_undo_history_is_the_segment_editors_and_a_manual_edit_drops_redo(scene, volume, segmentation):
    logic = RefineLogic(ClickStampRefiner())
    saved = []
    logic.beforeChange = saved.append  # the Slicer panel hooks the Segment Editor's saveStateForUndo here
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 3, 14, 7)]))
    assert saved == [segmentation]
    assert isinstance(logic._histories[segmentation.GetID()], slicer.vtkSegmentationHistory)
    assert logic.undo() and logic.canRedo()
    # Editing the segmentation by other means after an undo makes redo unavailable.
    segment = segmentation.GetSegmentation().GetNthSegment(0)
    segment.SetName(segment.GetName() + " edited")
    assert not logic.canRedo() and not logic.redo()
    # A refine that changes nothing saves no undo state.
    logic2 = RefineLogic(ClickStampRefiner())
    current = masks(segmentation, volume)["P01_L01"]
    k, j, i = map(int, np.argwhere(current)[0])
    logic2.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, k, j, i)]))
    assert not logic2.canUndo()


def test_with_a_real_refiner_only_the_clicked_slice_changes(scene, volume, segmentation, tiny_refiner):
    before = masks(segmentation, volume)
    logic = RefineLogic(tiny_refiner)
    result = logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 2, 8, 7)]))
    assert (result.axis, result.index) == (0, 2)
    after = masks(segmentation, volume)
    keep = np.arange(SHAPE[0]) != 2
    for sid in before:
        np.testing.assert_array_equal(after[sid][keep], before[sid][keep])


def test_a_segment_larger_than_the_volume_keeps_what_lies_outside_it(scene, segmentation):
    # The segmentation was made on the rotated volume; refining on a volume cropped to
    # part of it (another slice range and rows) must change only the clicked slice, inside it.
    source = scene.GetFirstNodeByName("rotated")
    m = ijkToRasMatrix(source)
    image = imageFromVolumeNode(source)[:, 3:15, 1:5]  # sitk order (i, j, k): i 0..19, j 3..14, k 1..4
    cropped = addVolume(scene, "cropped", image)
    before = masks(segmentation, source)
    logic = RefineLogic(ClickStampRefiner())
    # Cropped voxel (k 1, j 9, i 7) is (k 2, j 12, i 7) of the source: L02, taken over by L01.
    point = (m @ np.array([7, 12, 2, 1.0]))[:3]
    np.testing.assert_allclose(rasToArrayIndex(cropped, point), (1, 9, 7), atol=1e-9)
    result = logic.refine(segmentation, "P01_L01", cropped, markups(scene, [point]))
    assert result.changedSlices == [1]
    after = masks(segmentation, source)
    expected = dict(before)
    expected["P01_L01"] = before["P01_L01"].copy()
    expected["P01_L01"][2, 12, 7] = True
    expected["P01_L02"] = before["P01_L02"].copy()
    expected["P01_L02"][2, 12, 7] = False
    for sid in before:
        np.testing.assert_array_equal(after[sid], expected[sid], err_msg=sid)


def test_a_click_between_two_slices_goes_to_the_one_slicer_displays(volume):
    # Halfway between slices, Slicer's nearest-neighbour display rounds up; so must the
    # refined slice, for even and odd slices alike (np.round sends 2.5 to 2 but 3.5 to 4).
    for k, shown in ((2.5, 3), (3.5, 4), (-0.5, 0)):
        clicks = clicksOnSlice(volume, [ras(volume, k, 10, 7)], [], axis=0)
        assert clicks.index == shown, k
    # The far face of the volume is outside whatever the parity of the slice count.
    with pytest.raises(PancakesInputError, match="outside"):
        clicksOnSlice(volume, [ras(volume, SHAPE[0] - 0.5, 10, 7)], [], axis=0)


def test_a_view_crossing_only_the_first_click_does_not_choose_the_axis(scene, volume, segmentation):
    # Clicks on K = 3; a Yellow view (plane I = 7) happens to cross the first one only. Its axis
    # used to be taken from the first point alone: the clicks then lay "on different slices along I".
    sliceNode = slicer.vtkMRMLSliceNode()
    sliceNode.SetLayoutName("Yellow")
    scene.AddNode(sliceNode)
    m = ijkToRasMatrix(volume)
    sliceNode.SetSliceToRASByNTP(*m[:3, 0], *m[:3, 1], *ras(volume, 0, 0, 7), 0)
    refiner = ClickStampRefiner()
    node = markups(scene, [ras(volume, 3, 10, 7), ras(volume, 3, 14, 12)])
    RefineLogic(refiner).refine(segmentation, "P01_L03", volume, node)
    assert (refiner.calls[0]["axis"], refiner.calls[0]["index"]) == (0, 3)
    assert sliceAxisFromViews(scene, volume, [ras(volume, 3, 10, 7), ras(volume, 4, 11, 7)]) == 2


def test_previous_is_the_segment_itself_once_edited_by_hand(scene, volume, segmentation):
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    node = markups(scene, [ras(volume, 3, 14, 7)])
    logic.refine(segmentation, "P01_L01", volume, node)
    edited = masks(segmentation, volume)["P01_L01"]
    edited[3, 2, 2] = ~edited[3, 2, 2]  # a manual edit of the refined slice
    writeSegmentMask(segmentation, "P01_L01", volume, edited, 0, [3])
    node.AddControlPoint([float(v) for v in ras(volume, 3, 16, 8)], "F-2")
    logic.refine(segmentation, "P01_L01", volume, node)
    previous = refiner.calls[1]["previous"]
    # The stored logits describe a mask the segment no longer shows: the edit wins.
    assert previous.dtype == np.float32 and set(np.unique(previous)) <= {0.0, 1.0}
    np.testing.assert_array_equal(previous, edited[3].astype(np.float32))


# ---- slice-only updates: the slab write and the slice-level refiner ------------------
class PatternRefiner(ClickStampRefiner):
    """Test double whose result on a slice is a fixed pseudo-random third of its pixels, whatever
    the seed and clicks: one update then gains and loses many voxels at once."""

    def refine_slice_of_volume(self, volume, axis, index, seed_slice, positive, negative, previous=None,
                               spacing=None, window=None):
        super().refine_slice_of_volume(volume, axis, index, seed_slice, positive, negative, previous, spacing, window)
        return np.where(self.pattern(np.shape(seed_slice)), self.LOGIT, -self.LOGIT).astype(np.float32)

    @staticmethod
    def pattern(shape):
        return np.random.default_rng(sum(shape)).random(shape) < 0.35


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


def test_a_new_empty_segmentation_gets_exactly_the_refined_slices(scene, volume):
    # Segments added empty have no voxels and no lattice yet: the first write gives them the volume's.
    node = createSegmentationNode(scene, volume, "new")
    for sid in ("A", "B"):
        node.GetSegmentation().AddEmptySegment(sid, sid, [1.0, 0.5, 0.0])
    logic = RefineLogic(PatternRefiner())
    logic.refine(node, "A", volume, markups(scene, [ras(volume, 2, 10, 6)]), axis=1)
    a = np.zeros(SHAPE, bool)
    a[:, 10] = PatternRefiner.pattern((SHAPE[0], SHAPE[2]))
    np.testing.assert_array_equal(masks(node, volume)["A"], a)
    logic.refine(node, "B", volume, markups(scene, [ras(volume, 2, 10, 6)]), axis=0)
    b = np.zeros(SHAPE, bool)
    b[2] = PatternRefiner.pattern(SHAPE[1:])
    after = masks(node, volume)
    np.testing.assert_array_equal(after["B"], b)
    np.testing.assert_array_equal(after["A"], a & ~b)
    assert logic.undo() and not masks(node, volume)["B"].any()


def test_propagation_writes_every_changed_slice(scene, volume, segmentation):
    # propagate=True refines the whole 3D seed; the slab of changed slices is written at once.
    class Spreading(ClickStampRefiner):
        def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                                propagate=False, spacing=None, with_logits=False):
            out, logits = super().refine_volume_slice(volume, axis, index, seed, positive, negative, previous,
                                                      propagate, spacing, True)
            out[1:5, 2:4, 14:17] = True  # the neighbours it reached
            return out, logits

    before = masks(segmentation, volume)
    refiner = Spreading()
    result = RefineLogic(refiner).refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]),
                                         propagate=True)
    assert refiner.calls[0]["propagate"] and result.changedSlices == [1, 2, 3, 4]
    expected = before["P01_L02"].copy()
    expected[1:5, 2:4, 14:17] = True
    expected[3, 6, 5] = True
    after = masks(segmentation, volume)
    np.testing.assert_array_equal(after["P01_L02"], expected)
    np.testing.assert_array_equal(after["P01_L01"], before["P01_L01"] & ~expected)


@pytest.mark.parametrize("axis, index", [(0, 3), (1, 17), (2, 0)])
def test_the_slice_level_refiner_gives_the_logits_of_refine_volume_slice(tiny_refiner, volume, axis, index):
    voxels = sitk.GetArrayFromImage(imageFromVolumeNode(volume))
    seed = np.zeros(SHAPE, bool)
    seed[:, 5:12, 4:10] = True
    plane = [SHAPE[a] for a in range(3) if a != axis]
    clicks = dict(positive=[(1, 2)], negative=[(plane[0] - 2, plane[1] - 1)])
    spacing = (3.0, 0.7, 1.2)
    previous = np.random.default_rng(1).normal(0, 3, plane).astype(np.float32)
    out, logits = tiny_refiner.refine_volume_slice(voxels, axis, index, seed, previous=previous, spacing=spacing,
                                                   with_logits=True, **clicks)
    window = tiny_refiner.volume_window(voxels)
    for given in (window, None):
        direct = tiny_refiner.refine_slice_of_volume(voxels, axis, index, np.take(seed, index, axis), previous=previous,
                                                     spacing=spacing, window=given, **clicks)
        assert direct.dtype == np.float32 and direct.shape == tuple(plane)
        np.testing.assert_array_equal(direct, logits)
    np.testing.assert_array_equal(np.take(out, index, axis), logits > 0)
    with pytest.raises(PancakesInputError, match=r"window \(5.0, 5.0\): expected finite \(low, high\) with low < high"):
        tiny_refiner.refine_slice_of_volume(voxels, axis, index, None, window=(5.0, 5.0))
    with pytest.raises(PancakesInputError, match=r"seed_slice: shape \(2, 2\) does not match"):
        tiny_refiner.refine_slice_of_volume(voxels, axis, index, np.zeros((2, 2)), window=window)


def test_the_window_is_computed_once_per_volume_and_again_when_its_voxels_change(scene, volume, segmentation):
    from vtk.util import numpy_support

    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    node = _two_clicks_on_slice_3(scene, volume, segmentation, logic)
    assert len(refiner.windows) == 1  # the second click reuses the volume's window
    np.testing.assert_array_equal(refiner.windows[0], sitk.GetArrayFromImage(imageFromVolumeNode(volume)))
    first = refiner.calls[0]["window"]
    assert refiner.calls[1]["window"] == first
    # Edit the voxels in place and say so (slicer.util.arrayFromVolumeModified): the MTime moves on.
    imageData = volume.GetImageData()
    numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars())[:] *= 2
    imageData.Modified()
    node.AddControlPoint([float(v) for v in ras(volume, 3, 17, 8)], "F-3")
    logic.refine(segmentation, "P01_L01", volume, node)
    assert len(refiner.windows) == 2
    assert refiner.calls[2]["window"] == pytest.approx((2 * first[0], 2 * first[1]))


def test_slab_reads_and_writes_that_do_not_fit_the_volume_say_so(volume, segmentation):
    with pytest.raises(PancakesInputError, match=r"a slab of shape \(1, 24, 19\) from slice 2 along axis 0 does "
                                                 r"not fit volume 'rotated' of shape \(6, 24, 20\)"):
        writeSegmentSlab(segmentation, "P01_L01", volume, np.zeros((1, 24, 19), bool), 0, 2)
    with pytest.raises(PancakesInputError, match="from slice 5 along axis 0 does not fit"):
        writeSegmentSlab(segmentation, "P01_L01", volume, np.zeros((2, 24, 20), bool), 0, 5)
    with pytest.raises(PancakesInputError, match=r"slices 3..6 along axis 0 are not in volume 'rotated'"):
        segmentSlab(segmentation, "P01_L01", volume, 0, 3, 7)
    np.testing.assert_array_equal(segmentSlab(segmentation, "P01_L01", volume, 1, 3, 7),
                                  segmentMask(segmentation, "P01_L01", volume)[:, 3:7])


def test_prepare_pays_the_one_off_costs_before_the_first_click(scene, volume, segmentation):
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    logic.prepare(volume)
    assert len(refiner.windows) == 1 and len(refiner.calls) == 2  # the window, and the network warmed up
    assert all(not c["positive"] and not c["negative"] and not c["seed"].any() for c in refiner.calls)
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 3, 14, 7)]))
    assert len(refiner.windows) == 1  # the first click reuses the window
    assert refiner.calls[-1]["window"] is not None and refiner.calls[-1]["previous"] is None


def test_prepare_names_a_volume_that_cannot_be_refined(scene, tmp_path):
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.refine import Refiner
    from pancakes.modeling.refine_net import RefineNet

    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    flat = sitk.GetImageFromArray(np.full(SHAPE, 7.0, np.float32))
    with pytest.raises(PancakesInputError, match="constant"):
        RefineLogic(Refiner.load(path, device="cpu")).prepare(addVolume(scene, "flat", flat))
