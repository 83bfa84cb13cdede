"""Training's parallel helpers: batched click maps and worker processes give what the serial code gives."""
import numpy as np
import pytest
import torch

from pancakes.refine.clicks import batch_click_maps, click_maps, next_click
from pancakes.training.refine.data import Example
from pancakes.training.refine.parallel import SessionWorkers
from pancakes.training.refine.simulate import model_input


def test_batched_click_maps_equal_the_per_sample_maps_the_refiner_uses():
    # Training and benchmarks build maps with torch, the shipped Refiner with numpy: a
    # mismatch would train the network on an encoding it never sees in use.
    rng = np.random.default_rng(0)
    pos = [[tuple(rng.uniform(-0.5, 63.5, 2)) for _ in range(rng.integers(0, 5))] for _ in range(6)]
    neg = [[tuple(rng.uniform(-0.5, 63.5, 2)) for _ in range(rng.integers(0, 5))] for _ in range(6)]
    pos[0], neg[0] = [], []  # a session with no clicks at all
    want = np.stack([click_maps(p, n, 64) for p, n in zip(pos, neg)])
    got = batch_click_maps(pos, neg, 64)
    assert got.shape == (6, 2, 64, 64) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    assert float(got[0].abs().max()) == 0.0


def test_model_input_stacks_image_seed_clicks_and_previous_in_channel_order():
    rng = np.random.default_rng(1)
    images = rng.random((2, 32, 32)).astype(np.float32)
    seeds = rng.random((2, 32, 32)) > 0.5
    previous = rng.random((2, 32, 32)).astype(np.float32)
    x = model_input(images, seeds, [[(3.0, 4.0)], []], [[], [(10.0, 20.0)]], previous)
    assert x.shape == (2, 5, 32, 32)
    np.testing.assert_array_equal(x[:, 0].numpy(), images)
    np.testing.assert_array_equal(x[:, 1].numpy(), seeds.astype(np.float32))
    np.testing.assert_array_equal(x[:, 4].numpy(), previous)
    assert float(x[0, 2, 3, 4]) == pytest.approx(1.0) and float(x[0, 3].max()) == 0.0
    assert float(x[1, 3, 10, 20]) == pytest.approx(1.0) and float(x[1, 2].max()) == 0.0


class _Discs:
    """A stand-in ExampleSource whose draw depends only on the rng it is given."""

    def draw(self, rng):
        rr, cc = np.mgrid[:32, :32]
        r0, c0 = rng.integers(8, 24, 2)
        disc = (rr - r0) ** 2 + (cc - c0) ** 2 <= int(rng.integers(3, 7)) ** 2
        return Example(disc.astype(np.float32), disc.astype(np.int64), disc, "discs")


def _sessions(n: int):
    rng = np.random.default_rng(2)
    targets = rng.random((n, 32, 32)) > 0.7
    masks = rng.random((n, 32, 32)) > 0.7
    masks[0] = targets[0]  # a finished session: no click
    return masks, targets


def test_workers_draw_and_click_exactly_as_in_process():
    # Results must not depend on the worker count, or a GPU run could not be compared
    # with (or resumed as) a CPU one.
    masks, targets = _sessions(9)
    with SessionWorkers(_Discs(), workers=0) as serial, SessionWorkers(_Discs(), workers=2) as parallel:
        a = serial.draw_many(np.random.default_rng(5), 7)
        b = parallel.draw_many(np.random.default_rng(5), 7)
        assert len(a) == len(b) == 7
        for x, y in zip(a, b):
            assert np.array_equal(x.target, y.target)
        assert len({int(e.target.sum()) * 1000 + int(np.argmax(e.target)) for e in a}) > 1  # not one example 7 times
        ca = serial.next_clicks(masks, targets, np.random.default_rng(6), p_random=0.5)
        cb = parallel.next_clicks(masks, targets, np.random.default_rng(6), p_random=0.5)
    assert ca == cb and ca[0] is None
    # Deterministic clicks (p_random 0) are the benchmark protocol's next_click.
    with SessionWorkers() as serial:
        assert serial.next_clicks(masks, targets, np.random.default_rng(0)) == \
            [next_click(m, t) for m, t in zip(masks, targets)]


def test_workers_reject_bad_arguments():
    with pytest.raises(ValueError, match="workers must be >= 0"):
        SessionWorkers(_Discs(), workers=-1)
    with pytest.raises(RuntimeError, match="without a source"):
        SessionWorkers().draw_many(np.random.default_rng(0), 1)


def test_train_command_runs_with_worker_processes_and_inits_from_its_checkpoint(tmp_path, monkeypatch):
    # The GPU recipe (scripts/train_refine_gpu.sh) trains with --workers and continues
    # from a run's last.ckpt, because the GPU's older torch cannot read our TorchScript.
    from pancakes.refine.refiner import Refiner
    from pancakes.training.refine.train import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    common = ["--synthetic-only", "--templates", "1", "--batch", "3", "--steps-per-sample", "1",
              "--features", "4", "--levels", "2", "--val-every", "1e9", "--warm-clicks", "2"]
    run = tmp_path / "run"
    assert main(["--out", str(run), "--max-iterations", "2", "--workers", "1", *common]) == 0
    meta = Refiner.load(run / "refine.pt", device="cpu").metadata["training"]
    assert meta["iterations"] == 2 and "1 worker(s)" in meta["hardware"]
    other = tmp_path / "other"
    assert main(["--out", str(other), "--max-iterations", "0", "--init", str(run / "last.ckpt"), *common]) == 0
    a = Refiner.load(run / "refine.pt", device="cpu").module.state_dict()
    b = Refiner.load(other / "refine.pt", device="cpu").module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
