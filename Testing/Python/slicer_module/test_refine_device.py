"""The refine logic loads its refiner on the panel's device and lets it go (issue 17, defects 8 and 10)."""
from __future__ import annotations

import pancakes
from refine_scene import RefineLogic


class FakeRefiner:
    loads = []

    @classmethod
    def load(cls, path=None, device="auto"):
        cls.loads.append(device)
        refiner = cls()
        refiner.device = device
        return refiner


def test_refiner_is_loaded_on_the_chosen_device(monkeypatch):
    FakeRefiner.loads = []
    monkeypatch.setattr(pancakes, "Refiner", FakeRefiner, raising=False)
    logic = RefineLogic(device="cpu")
    assert logic.refiner.device == "cpu"
    logic.setDevice("cpu")
    assert logic.refiner.device == "cpu" and FakeRefiner.loads == ["cpu"]  # same device: not reloaded
    logic.setDevice("cuda")
    assert logic.device == "cuda" and logic.refiner.device == "cuda"
    assert FakeRefiner.loads == ["cpu", "cuda"]


def test_a_refiner_passed_in_is_kept_across_device_changes():
    given = object()
    logic = RefineLogic(given)
    logic.setDevice("cpu")
    assert logic.refiner is given
    logic.release()
    assert logic.refiner is given


def test_release_drops_a_loaded_refiner(monkeypatch):
    FakeRefiner.loads = []
    monkeypatch.setattr(pancakes, "Refiner", FakeRefiner, raising=False)
    logic = RefineLogic(device="cpu")
    first = logic.refiner
    logic.release()
    assert logic._refiner is None and logic.refiner is not first
