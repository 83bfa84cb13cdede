"""A kept Pancakes label's refinement starts from its core (SegmentationLogic.seedCore) on a real MRML scene."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)
import SimpleITK as sitk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.Keep import keepProtocol  # noqa: E402
from PancakesSegmentLib.Parameters import RunSettings  # noqa: E402
from PancakesSegmentLib.SegmentationLogic import SegmentationLogic  # noqa: E402
from PancakesSegmentLib.SegmentSlabs import segmentSlab, writeSegmentSlab  # noqa: E402
from PancakesSegmentLib.SelfTest import IntensityBinsModel, addVolume, syntheticImage  # noqa: E402

M, K, m = 4, 6, 1


@pytest.fixture
def kept(random_model):
    scene = slicer.vtkMRMLScene()
    volume = addVolume(scene, "A", syntheticImage(seed=1))
    logic = SegmentationLogic(scene)
    logic.setModel(random_model)
    logic.run([volume], RunSettings(M, K, "cpu"))
    return logic, volume, keepProtocol(logic, m)[0]


def _slice(node, segmentId, volume, index):
    return np.take(segmentSlab(node, segmentId, volume, 0, index, index + 1), 0, axis=0)


def test_an_untouched_kept_label_gets_its_core(kept):
    logic, volume, node = kept
    cores = sitk.GetArrayFromImage(logic.results[volume.GetID()].predictor.cores(M, K, [m])[0])
    labels = sitk.GetArrayFromImage(logic.labels(volume.GetID(), m))
    found = 0
    for k in range(K):
        segmentId = f"P{m + 1:02d}_L{k + 1:02d}"
        for index in range(labels.shape[0]):
            current = _slice(node, segmentId, volume, index)
            np.testing.assert_array_equal(current, labels[index] == k + 1)  # the kept segment shows the label
            core = logic.seedCore(node, segmentId, volume, 0, index, current)
            np.testing.assert_array_equal(core, cores[index] == k + 1)
            assert not (core & ~current).any()  # the core lies inside the label
            found += int(core.sum() < current.sum())
    assert found  # somewhere the core is smaller than the label it comes from


def test_an_edited_slice_another_segment_or_volume_keeps_the_segment(kept):
    logic, volume, node = kept
    segmentId = f"P{m + 1:02d}_L01"
    edited = ~_slice(node, segmentId, volume, 2)
    writeSegmentSlab(node, segmentId, volume, edited[None], 0, 2)
    assert logic.seedCore(node, segmentId, volume, 0, 2, _slice(node, segmentId, volume, 2)) is None
    assert logic.seedCore(node, "not a label", volume, 0, 1, _slice(node, segmentId, volume, 1)) is None
    other = addVolume(logic.scene, "B", syntheticImage(seed=2))
    assert logic.seedCore(node, segmentId, other, 0, 1, _slice(node, segmentId, volume, 1)) is None


def test_a_model_without_probabilities_keeps_the_segment(random_model):
    """The self-test's intensity bins have no probabilities: their labels are kept as the seed."""
    scene = slicer.vtkMRMLScene()
    volume = addVolume(scene, "A", syntheticImage(seed=1))
    logic = SegmentationLogic(scene)
    logic.setModel(IntensityBinsModel(random_model))
    logic.run([volume], RunSettings(M, K, "cpu"))
    node = keepProtocol(logic, m)[0]
    segmentId = f"P{m + 1:02d}_L02"
    current = _slice(node, segmentId, volume, 1)
    assert current.any() and logic.seedCore(node, segmentId, volume, 0, 1, current) is None


def test_prepare_decodes_the_confidence_once_and_only_for_kept_labels(kept, monkeypatch):
    logic, volume, node = kept
    predictor = logic.results[volume.GetID()].predictor
    calls = []
    real = predictor.confidence
    monkeypatch.setattr(predictor, "confidence", lambda *a, **k: calls.append(a) or real(*a, **k))
    logic.prepareSeedCores(node, volume)
    segmentId = f"P{m + 1:02d}_L01"
    logic.seedCore(node, segmentId, volume, 0, 1, _slice(node, segmentId, volume, 1))
    logic.labelPrior(node, segmentId, volume, 0, 1, _slice(node, segmentId, volume, 1))
    assert calls == [(M, K, [m])]  # decoded when prepared, reused by the core and the prior at the click
    logic.prepareSeedCores(None, volume)
    logic.prepareSeedCores(slicer.vtkMRMLSegmentationNode(), volume)  # not a Pancakes segmentation
    assert len(calls) == 1


def test_a_cancelled_prepare_refines_from_the_segment_until_prepared_again(kept):
    # The decode shows its progress and can be cancelled; then no click waits for it: the label is refined
    # from the segment as it stands (no core, no prior) until the segment is picked (prepared) again.
    logic, volume, node = kept
    segmentId = f"P{m + 1:02d}_L02"
    current = _slice(node, segmentId, volume, 1)
    assert not logic.prepareSeedCores(node, volume, cancel=lambda: True)
    assert logic.seedCore(node, segmentId, volume, 0, 1, current) is None
    assert logic.labelPrior(node, segmentId, volume, 0, 1, current) is None
    heard = []
    assert logic.prepareSeedCores(node, volume, progress=lambda done, total: heard.append((done, total)))
    assert heard and heard[-1][0] == heard[-1][1]
    assert logic.seedCore(node, segmentId, volume, 0, 1, current) is not None
    assert logic.labelPrior(node, segmentId, volume, 0, 1, current) is not None


def test_a_kept_label_gets_its_protocols_labels_and_confidence_as_prior(kept):
    """labelPrior: the kept protocol's labels and confidence bytes on the slice, where seedCore gives a core."""
    logic, volume, node = kept
    labels = sitk.GetArrayFromImage(logic.labels(volume.GetID(), m))
    confidence = sitk.GetArrayFromImage(logic.results[volume.GetID()].predictor.confidence(M, K, [m])[0])
    segmentId = f"P{m + 1:02d}_L02"
    for axis, index in ((0, 1), (1, 7), (2, 4)):  # any slicing direction: the volumes are 3D voxel arrays
        current = np.take(labels, index, axis=axis) == 2
        got_labels, got_confidence = logic.labelPrior(node, segmentId, volume, axis, index, current)
        np.testing.assert_array_equal(got_labels, np.take(labels, index, axis=axis))
        np.testing.assert_array_equal(got_confidence, np.take(confidence, index, axis=axis))
    edited = ~_slice(node, segmentId, volume, 2)
    assert logic.labelPrior(node, segmentId, volume, 0, 2, edited) is None
    assert logic.labelPrior(node, "not a label", volume, 0, 1, _slice(node, segmentId, volume, 1)) is None


class _PriorRecorder:
    """Refiner double that records the label prior of each call."""

    def __init__(self):
        self.priors = []

    def volume_window(self, volume):
        return 0.0, 1.0

    def refine_slice_of_volume(self, volume, axis, index, seed_slice, positive, negative, previous=None,
                               spacing=None, window=None, label_prior=None):
        self.priors.append(label_prior)
        return np.where(np.asarray(seed_slice, bool), 3.0, -3.0).astype(np.float32)


def test_a_slice_session_keeps_the_prior_it_started_with(kept):
    """RefineLogic asks labelPrior once, when a slice's session starts, and passes it at every click there."""
    from refine_scene import RefineLogic, markups, ras

    logic, volume, node = kept
    recorder = _PriorRecorder()
    refine = RefineLogic(recorder)
    refine.seedCore, refine.labelPrior = logic.seedCore, logic.labelPrior
    asked = []
    refine.labelPrior = lambda *a: asked.append(a[3:5]) or logic.labelPrior(*a)
    labels = sitk.GetArrayFromImage(logic.labels(volume.GetID(), m))
    values, counts = np.unique(labels, return_counts=True)
    value = int(values[np.argmax(counts)])  # the label with most voxels
    segmentId = f"P{m + 1:02d}_L{value:02d}"
    k, j, i = np.argwhere(labels == value)[0]
    points = markups(logic.scene, [ras(volume, k, j, i)])
    refine.refine(node, segmentId, volume, points, axis=0)
    refine.refine(node, segmentId, volume, points, axis=0)
    assert asked == [(0, int(k))]  # once per slice session
    first, second = recorder.priors
    assert first is not None and second is first
    np.testing.assert_array_equal(first[0], labels[k])
    refine.finish()
    refine.refine(node, segmentId, volume, points, axis=0)
    assert len(asked) == 2  # a new session asks again


def test_a_failing_prior_refines_without_it(kept):
    from refine_scene import RefineLogic, markups, ras

    logic, volume, node = kept
    recorder = _PriorRecorder()
    refine = RefineLogic(recorder)

    def broken(*args):
        raise MemoryError("no room for the confidence")

    refine.labelPrior = broken
    refine.refine(node, f"P{m + 1:02d}_L01", volume, markups(logic.scene, [ras(volume, 1, 3, 3)]), axis=0)
    assert recorder.priors == [None]


def test_a_failing_core_leaves_the_segment_as_seed():
    """RefineLogic.seedCore raising costs the core only: the slice is refined from the segment."""
    from refine_scene import ClickStampRefiner, RefineLogic  # noqa: F401

    logic = RefineLogic(ClickStampRefiner())

    def broken(*args):
        raise MemoryError("no room for the cores")

    logic.seedCore = broken
    assert logic._core(("s", "P02_L01", "v", 0, 1), None, "P02_L01", None, np.zeros((2, 2), bool)) is None
