"""The refiner's training examples: the real TRAIN bank joins the synthetic generator when it is there.

The import of the bank once pointed at pancakes.training.training (ModuleNotFoundError), so
`pancakes-train-refine` without --synthetic-only failed at start; tests only ever used stand-ins.
"""
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
