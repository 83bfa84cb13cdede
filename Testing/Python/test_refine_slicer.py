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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "PancakesSegment"))
from PancakesSegmentLib.refine_logic import (  # noqa: E402
    RefineLogic,
    clicksOnSlice,
    isNegativePoint,
    rasToArrayIndex,
    segmentMask,
    sliceAxisFromViews,
    writeSegmentMask,
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

    LOGIT = 4.5  # the slice logits it returns: +LOGIT inside its result, -LOGIT outside

    def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                            propagate=False, spacing=None, with_logits=False):
        self.calls.append(dict(axis=axis, index=index, seed=seed.copy(), positive=list(positive),
                               negative=list(negative), previous=previous, spacing=spacing))
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


def test_undo_restores_every_segment_and_the_session_keeps_its_seed(scene, volume, segmentation):
    before = masks(segmentation, volume)
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    first = markups(scene, [ras(volume, 3, 14, 7)])
    logic.refine(segmentation, "P01_L01", volume, first)
    first.AddControlPoint([float(v) for v in ras(volume, 3, 16, 8)], "F-2")
    logic.refine(segmentation, "P01_L01", volume, first)
    second = refiner.calls[1]
    # The first step has no result yet: the refiner is left to feed the seed (its seed prior).
    assert refiner.calls[0]["previous"] is None
    # The seed is the mask the session started from; the last result's logits are "previous".
    np.testing.assert_array_equal(second["seed"][3], before["P01_L01"][3])
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


def test_with_a_real_refiner_only_the_clicked_slice_changes(scene, volume, segmentation, tmp_path):
    from pancakes.export import default_metadata, save_torchscript
    from pancakes.refine import Refiner
    from pancakes.refine.model import RefineNet

    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    before = masks(segmentation, volume)
    logic = RefineLogic(Refiner.load(path, device="cpu"))
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
