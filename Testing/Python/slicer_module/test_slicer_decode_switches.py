"""Decode settings switched in the Slicer logic (adaptation, coarse protocol, superpixels) re-decode from the cached
features, on a real MRML scene (slicer-core) with the real decoder, not intensity bins."""
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
from PancakesSegmentLib.Parameters import RunSettings  # noqa: E402
from PancakesSegmentLib.SegmentationLogic import SegmentationLogic  # noqa: E402
# The scene, its three volumes and the UNet spy are those of the main logic tests.
from test_slicer_segmentation import K, M, SETTINGS, encodeCalls, scene, volumes  # noqa: E402,F401


def test_adaptation_switch_redecodes_from_the_cache(scene, volumes, encodeCalls, random_model_path):
    """The real decoder (not intensity bins): turning the adaptation off gives other labels, without the UNet."""
    from pancakes import Pancakes

    logic = SegmentationLogic(scene)
    logic.setModel(Pancakes.load(random_model_path, device="cpu"))
    logic.run(volumes, SETTINGS)
    on = [sitk.GetArrayFromImage(logic.labels(v.GetID(), 0)) for v in volumes]
    assert logic.model.adapt == 1.0 and len(logic.finishedResults()) == 3
    report = logic.redecode(RunSettings(M, K, "cpu", adapt=False))
    assert len(report.finished) == 3 and encodeCalls == ["A", "B", "C"]
    assert logic.model.adapt == 0.0 and len(logic.finishedResults()) == 3
    off = [sitk.GetArrayFromImage(logic.labels(v.GetID(), 0)) for v in volumes]
    assert any(not np.array_equal(a, b) for a, b in zip(on, off))
    # Back on: the same labels as the first run.
    logic.redecode(SETTINGS)
    assert all(np.array_equal(a, sitk.GetArrayFromImage(logic.labels(v.GetID(), 0))) for a, v in zip(on, volumes))


def test_coarse_switch_redecodes_the_last_protocol_from_the_cache(scene, volumes, encodeCalls, random_model_path):
    """The coarse protocol is on by default: the last protocol holds two labels; off, it is fine again
    (other labels, no UNet), and the other protocols never change."""
    from pancakes import Pancakes

    logic = SegmentationLogic(scene)
    logic.setModel(Pancakes.load(random_model_path, device="cpu", coarse=False))
    logic.run(volumes, SETTINGS)  # the settings turn it on
    assert logic.model.coarse is True
    last = [sitk.GetArrayFromImage(logic.labels(v.GetID(), M - 1)) for v in volumes]
    first = [sitk.GetArrayFromImage(logic.labels(v.GetID(), 0)) for v in volumes]
    assert all(set(np.unique(a)) <= {1, 2} for a in last)
    report = logic.redecode(RunSettings(M, K, "cpu", coarse=False))
    assert len(report.finished) == 3 and encodeCalls == ["A", "B", "C"] and logic.model.coarse is False
    assert len(logic.finishedResults()) == 3
    fine = [sitk.GetArrayFromImage(logic.labels(v.GetID(), M - 1)) for v in volumes]
    assert any(not np.array_equal(a, b) for a, b in zip(last, fine))
    assert all(np.array_equal(a, sitk.GetArrayFromImage(logic.labels(v.GetID(), 0))) for a, v in zip(first, volumes))


def test_superpixel_switch_redecodes_from_the_cache(scene, volumes, encodeCalls, random_model_path, monkeypatch):
    """Superpixel pooling is on by default; switched off, every volume is decoded again from the cache
    without it (no UNet), and back on with it, reusing each slice's superpixels. (The random model's labels on
    these tiny volumes are too few for the pooling to change them, so spies count the pooled decodes and
    the slices segmented into superpixels.)"""
    import pancakes.engine as engine
    import pancakes.superpixel_pooling as pooling
    from pancakes import Pancakes

    pooled, segmented = [], []
    real, realSegment = engine.pool_in_superpixels, pooling.superpixels
    monkeypatch.setattr(engine, "pool_in_superpixels", lambda *a, **k: pooled.append(1) or real(*a, **k))
    monkeypatch.setattr(pooling, "superpixels", lambda *a, **k: segmented.append(1) or realSegment(*a, **k))
    logic = SegmentationLogic(scene)
    logic.setModel(Pancakes.load(random_model_path, device="cpu", superpixels=False))
    logic.run(volumes, SETTINGS)  # the settings turn it on
    assert logic.model.superpixels is True and len(pooled) >= 3
    slices = len(segmented)
    assert slices == sum(v.GetImageData().GetDimensions()[2] for v in volumes)  # axial: one per slice
    pooled.clear()
    report = logic.redecode(RunSettings(M, K, "cpu", superpixels=False))
    assert len(report.finished) == 3 and encodeCalls == ["A", "B", "C"] and logic.model.superpixels is False
    assert len(logic.finishedResults()) == 3 and pooled == []
    logic.redecode(SETTINGS)
    assert logic.model.superpixels is True and len(pooled) >= 3 and len(logic.finishedResults()) == 3
    assert len(segmented) == slices  # kept with the cached features
