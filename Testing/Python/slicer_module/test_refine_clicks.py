"""Markups to clicks on a real MRML scene: RAS -> voxel, the slice and axis the clicks choose, mixed lists, bad clicks."""
from __future__ import annotations

import numpy as np
import pytest
from refine_scene import (  # noqa: F401  (fixtures are used by name)
    ClickStampRefiner,
    PancakesInputError,
    RefineLogic,
    SHAPE,
    clicksOnSlice,
    ijkToRasMatrix,
    isNegativePoint,
    markups,
    masks,
    ras,
    rasToArrayIndex,
    scene,
    segmentation,
    sliceAxisFromViews,
    volume,
)
from refine_scene import slicer


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
