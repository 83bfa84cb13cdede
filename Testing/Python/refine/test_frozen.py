"""The refiner's network frozen for CPU inference: the same logits, the weights kept, stand-ins left alone."""
from __future__ import annotations

import numpy as np
import torch

from pancakes.refine import frozen as frozen_module
from pancakes.refine.frozen import frozen_for_inference
from pancakes.refine.refiner import Refiner

torch.set_num_threads(1)
CPU = torch.device("cpu")


def _disk_image(size: int = 200):
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - 90) ** 2 + (xx - 110) ** 2 < 40 ** 2
    image = np.where(disk, 0.8, 0.2) + np.random.default_rng(0).normal(0, 0.05, (size, size))
    return image.astype(np.float32), disk


def test_the_bundled_refiner_runs_a_frozen_copy_and_keeps_its_weights():
    refiner = Refiner.load(device="cpu")
    net = refiner._network()
    assert net is not refiner.module and isinstance(net, torch.jit.ScriptModule)
    assert not list(net.parameters())                     # frozen: the weights are constants of the graph
    assert list(refiner.module.parameters())              # the loaded module keeps them (state_dict, training)
    assert refiner._network() is net                       # made once, not at every update


def test_frozen_and_plain_give_the_same_logits_and_masks():
    image, disk = _disk_image()
    seed = np.zeros_like(disk)
    clicks = dict(positive=[(90, 110), (70, 100)], negative=[(20, 20)])
    fast = Refiner.load(device="cpu").refine_logits(image, seed, **clicks)
    plain = Refiner.load(device="cpu", frozen=False).refine_logits(image, seed, **clicks)
    assert np.abs(fast - plain).max() < 1e-3
    assert ((fast > 0) == (plain > 0)).mean() > 0.999


def test_a_replaced_module_is_used_as_it_is():
    refiner = Refiner.load(device="cpu")
    refiner._network()

    def stand_in(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[2:]), 3.0)

    refiner.module = stand_in
    assert refiner._network() is stand_in
    assert (refiner.refine_logits(np.random.default_rng(1).random((64, 64)), None, positive=[(5, 5)]) > 0).all()


def test_eager_cuda_and_unfreezable_modules_are_returned_unchanged(monkeypatch):
    eager = torch.nn.Conv2d(5, 1, 1)
    assert frozen_for_inference(eager, CPU) is eager
    scripted = torch.jit.script(torch.nn.Conv2d(5, 1, 1).eval())
    assert frozen_for_inference(scripted, torch.device("cuda")) is scripted

    def cannot(*args, **kwargs):
        raise RuntimeError("this torch cannot freeze it")

    monkeypatch.setattr(frozen_module.torch.jit, "freeze", cannot)
    assert frozen_for_inference(scripted, CPU) is scripted


def test_a_frozen_copy_that_fails_or_disagrees_on_the_example_is_not_used(monkeypatch):
    scripted = torch.jit.script(torch.nn.Conv2d(5, 1, 1).eval())
    example = torch.rand(1, 5, 8, 8)
    assert frozen_for_inference(scripted, CPU, example) is not scripted      # a sound copy is used

    def fails_at_run(frozen):
        def run(x):
            raise RuntimeError("an operator this torch cannot run")
        return run

    monkeypatch.setattr(frozen_module.torch.jit, "optimize_for_inference", fails_at_run)
    assert frozen_for_inference(scripted, CPU, example) is scripted
    monkeypatch.setattr(frozen_module.torch.jit, "optimize_for_inference", lambda frozen: (lambda x: x[:, :1] + 1))
    assert frozen_for_inference(scripted, CPU, example) is scripted


def test_frozen_false_runs_the_loaded_module():
    refiner = Refiner.load(device="cpu", frozen=False)
    assert refiner._network() is refiner.module
