"""The module's self-test scenario (what Slicer's Reload and Test runs), here on a slicer-core scene."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML in plain Python) is not installed", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "PancakesSegment"))
from PancakesSegmentLib.SelfTest import runScenario  # noqa: E402


def test_self_test_scenario_passes_on_a_fresh_scene(tmp_path):
    steps = []
    outcome = runScenario(slicer.vtkMRMLScene(), tmp_path, log=steps.append)
    assert steps[-1] == "Self-test passed"
    assert len(outcome["export"].files) == 3 and all(p.is_file() for p in outcome["export"].files)
    assert (tmp_path / "random_pancakes.pt").is_file()
