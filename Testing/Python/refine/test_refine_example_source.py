"""The refiner's training examples: the real TRAIN bank joins the synthetic generator when it is there.

The import of the bank once pointed at pancakes.training.training (ModuleNotFoundError), so
`pancakes-train-refine` without --synthetic-only failed at start; tests only ever used stand-ins.
"""
import numpy as np
import pytest

from pancakes.training import real_data, synthetic
from pancakes.training.refine.data import ExampleSource


class _Generator:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_the_real_bank_is_used_when_present(monkeypatch):
    bank = object()
    monkeypatch.setattr(synthetic, "SyntheticGenerator", _Generator)
    monkeypatch.setattr(real_data, "load_bank", lambda split, build=True: bank if split == "train" else None)
    source = ExampleSource.default(synthetic_only=False, n_templates=4, log=lambda m: None)
    assert source.real is bank and source.p_synthetic == 0.5
    assert source.synthetic.kwargs["n_templates"] == 4


def test_without_the_bank_it_says_so_and_trains_on_synthetic_sets(monkeypatch):
    def missing(split, build=True):
        raise real_data.DataUnavailableError("no slice bank in /nowhere")

    monkeypatch.setattr(synthetic, "SyntheticGenerator", _Generator)
    monkeypatch.setattr(real_data, "load_bank", missing)
    said = []
    source = ExampleSource.default(synthetic_only=False, log=said.append)
    assert source.real is None and source.p_synthetic == 1.0
    assert len(said) == 1 and "synthetic only" in said[0] and "/nowhere" in said[0]


def test_real_share_sets_how_often_the_bank_is_drawn(monkeypatch):
    class _Set:
        def __init__(self, value):
            self.images = [np.full((8, 8), 0.5, np.float32)]
            self.labelmaps = [np.full((8, 8), value, np.int32)]
            self.dataset = "real" if value == 2 else "synthetic"

    class _Source:
        def __init__(self, value, **kwargs):
            self.value = value

        def sample_set(self, rng, S):
            return _Set(self.value)

    monkeypatch.setattr(synthetic, "SyntheticGenerator", lambda **kw: _Source(1))
    monkeypatch.setattr(real_data, "load_bank", lambda split, build=True: _Source(2))
    source = ExampleSource.default(n_templates=1, log=lambda m: None, real_share=0.8)
    assert source.p_synthetic == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    drawn = [source.draw(rng).source for _ in range(400)]
    assert 0.72 < drawn.count("real") / len(drawn) < 0.88
