"""The refine session on a real MRML scene: one slice per click, undo and redo, the previous prediction, propagation, prepare."""
from __future__ import annotations

import numpy as np
import pytest
from refine_scene import (  # noqa: F401  (fixtures are used by name)
    ClickStampRefiner,
    PatternRefiner,
    PancakesInputError,
    RefineLogic,
    SHAPE,
    addVolume,
    createSegmentationNode,
    ijkToRasMatrix,
    imageFromVolumeNode,
    markups,
    masks,
    ras,
    rasToArrayIndex,
    scene,
    segmentMask,
    segmentSlab,
    segmentation,
    tiny_refiner,
    volume,
    writeSegmentMask,
    writeSegmentSlab,
)
from refine_scene import slicer
from refine_scene import sitk


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
                                propagate=False, spacing=None, with_logits=False, window=None):
            out, logits = super().refine_volume_slice(volume, axis, index, seed, positive, negative, previous,
                                                      propagate, spacing, True, window)
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


def test_propagation_reads_and_writes_only_the_slab_within_its_reach(scene, volume, segmentation):
    # A click's cost grows with its reach, not with the volume: the refiner gets the slices within the reach (with
    # the whole volume's intensity window), and what it returns lands on those slices of the segment.
    class SpreadingEverywhere(ClickStampRefiner):
        def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                                propagate=False, spacing=None, with_logits=False, window=None, reach_mm=None):
            out, logits = super().refine_volume_slice(volume, axis, index, seed, positive, negative, previous,
                                                      propagate, spacing, True, window)
            out[:, 2:4, 14:17] = True  # every slice it was given
            return out, logits

    before = masks(segmentation, volume)
    refiner = SpreadingEverywhere()
    logic = RefineLogic(refiner)
    result = logic.refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]), propagate=True,
                          reachMm=3.0)  # one slice either side (3 mm slices)
    call = refiner.calls[0]
    assert (call["depth"], call["index"]) == (3, 1)  # slices 2..4 of 6, the clicked one in the middle
    voxels = sitk.GetArrayFromImage(imageFromVolumeNode(volume))
    assert call["window"] == pytest.approx(refiner.volume_window(voxels))
    assert result.changedSlices == [2, 3, 4]
    expected = before["P01_L02"].copy()
    expected[2:5, 2:4, 14:17] = True
    expected[3, 6, 5] = True
    np.testing.assert_array_equal(masks(segmentation, volume)["P01_L02"], expected)


def test_propagation_hands_on_progress_and_cancel_and_writes_the_slices_it_reached(scene, volume, segmentation):
    # The panel shows how far the spreading got and lets it be stopped: what it reached is still written.
    class Cancellable(ClickStampRefiner):
        def refine_volume_slice(self, volume, axis, index, seed, positive, negative, previous=None,
                                propagate=False, spacing=None, with_logits=False, window=None, progress=None, cancel=None):
            out, logits = super().refine_volume_slice(volume, axis, index, seed, positive, negative, previous,
                                                      propagate, spacing, True, window)
            for i in (4, 5):  # spreads upwards until cancelled
                if cancel():
                    break
                out[i, 2:4, 14:17] = True
                progress(i - 3, 5)
            return out, logits

    heard, stops = [], iter([False, True])
    result = RefineLogic(Cancellable()).refine(
        segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]), propagate=True,
        progress=lambda done, total: heard.append((done, total)), cancel=lambda: next(stops))
    assert heard == [(1, 5)] and result.changedSlices == [3, 4]
    after = masks(segmentation, volume)["P01_L02"]
    assert after[4, 2:4, 14:17].all() and not after[5, 2:4, 14:17].any()


class AskedFor(ClickStampRefiner):
    """Records the propagation options its last refine_volume_slice was given (None: not given)."""

    OPTIONS = ("reach_mm", "fixed_slices")

    def refine_volume_slice(self, *args, **kwargs):
        self.asked = {name: kwargs.pop(name, None) for name in self.OPTIONS}
        return super().refine_volume_slice(*args, **kwargs)


def test_propagation_hands_on_the_reach_the_panel_asks_for(scene, volume, segmentation):
    refiner = AskedFor()
    RefineLogic(refiner).refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]),
                                propagate=True, reachMm=30.0)
    assert refiner.asked["reach_mm"] == 30.0
    RefineLogic(refiner).refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]),
                                propagate=True)
    assert refiner.asked["reach_mm"] is None  # not asked: the refiner's own default (PROPAGATION_REACH_MM)


def test_propagation_keeps_the_slices_already_refined_with_clicks(scene, volume, segmentation):
    # Slices of the segment the user refined are settled: the spreading from another slice keeps them.
    refiner = AskedFor()
    logic = RefineLogic(refiner)
    logic.refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 1, 6, 5)]))  # slice 1, no spreading
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 4, 6, 5)]))  # another segment
    logic.refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]), propagate=True)
    assert refiner.asked["fixed_slices"] == [1]
    logic.refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 5, 6, 5)]), propagate=True)
    assert refiner.asked["fixed_slices"] == [1, 3]
    logic.finish()
    logic.refine(segmentation, "P01_L02", volume, markups(scene, [ras(volume, 3, 6, 5)]), propagate=True)
    assert refiner.asked["fixed_slices"] is None  # a new session: nothing settled yet


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


def test_a_slice_seeded_with_the_core_its_panel_gives(scene, volume, segmentation):
    """seedCore replaces the segment as the seed of a slice whose session starts (a kept label's core); the
    segment as the session found it still counts as "untouched", so the first step feeds the seed prior."""
    before = masks(segmentation, volume)["P01_L01"]
    core = np.zeros_like(before[3])
    core[12:15, 6:9] = True
    asked = []

    def seedCore(node, segmentId, volumeNode, axis, index, currentSlice):
        asked.append((segmentId, axis, index))
        np.testing.assert_array_equal(currentSlice, before[index])
        return core if index == 3 else None

    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    logic.seedCore = seedCore
    _two_clicks_on_slice_3(scene, volume, segmentation, logic)
    assert asked == [("P01_L01", 0, 3)]  # asked once, when the slice's session started
    first, second = refiner.calls
    np.testing.assert_array_equal(first["seed"], core)
    assert first["previous"] is None
    np.testing.assert_array_equal(second["seed"], core)
    assert second["previous"][14, 7] == ClickStampRefiner.LOGIT
    # Back to the segment as the session found it: the seed prior again, from the core.
    assert logic.undo() and logic.undo()
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 3, 14, 7)]))
    assert refiner.calls[-1]["previous"] is None
    np.testing.assert_array_equal(refiner.calls[-1]["seed"], core)
    # A slice the panel has no core for keeps the segment as its seed.
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [ras(volume, 2, 14, 7)]))
    np.testing.assert_array_equal(refiner.calls[-1]["seed"], before[2])
