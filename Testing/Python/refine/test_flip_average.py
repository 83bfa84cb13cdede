"""Test-time flip averaging of the refiner: the mean over flips, mapped back, on the pixels clicked."""
from __future__ import annotations

import numpy as np
import torch

from pancakes.refine.flip_average import FLIPS, NO_FLIPS, flip_averaged
from pancakes.refine.refiner import Refiner

torch.set_num_threads(1)


class Counting(torch.nn.Module):
    """Wraps a module and counts its calls."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.batches = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batches.append(x.shape[0])
        return self.inner(x)


def corner_weighted(x: torch.Tensor) -> torch.Tensor:
    """Not flip-equivariant: channel 0 scaled by a ramp that grows to the bottom right."""
    S = x.shape[-1]
    ramp = torch.arange(S, dtype=x.dtype)
    return x[:, :1] * (ramp[:, None] + 2 * ramp[None, :] + 1)


def test_the_average_is_the_mean_of_each_flip_mapped_back():
    x = torch.rand(2, 5, 8, 8)
    expected = sum(corner_weighted(x.flip(d)).flip(d) if d else corner_weighted(x) for d in FLIPS) / 4
    assert torch.allclose(flip_averaged(corner_weighted, x), expected)
    # The ramp's average over the flips is symmetric: its output no longer depends on orientation.
    ones = torch.ones(1, 5, 8, 8)
    out = flip_averaged(corner_weighted, ones)[0, 0]
    assert torch.allclose(out, out.flip(-1)) and torch.allclose(out, out.flip(-2))
    assert not torch.allclose(corner_weighted(ones)[0, 0], corner_weighted(ones)[0, 0].flip(-1))


def test_no_flips_is_the_module_alone_and_an_equivariant_module_is_unchanged():
    x = torch.rand(1, 5, 8, 8)
    assert torch.equal(flip_averaged(corner_weighted, x, NO_FLIPS), corner_weighted(x))
    conv = torch.nn.Conv2d(5, 1, 3, padding=1, bias=False)
    with torch.no_grad():  # a kernel symmetric under both flips commutes with them
        k = torch.rand(1, 5, 3, 3)
        conv.weight.copy_(k + k.flip(-1) + k.flip(-2) + k.flip(-1, -2))
        assert torch.allclose(flip_averaged(conv, x), conv(x), atol=1e-6)


def test_the_refiner_averages_four_passes_by_default_and_one_when_off():
    rng = np.random.default_rng(0)
    image = rng.random((96, 80)).astype(np.float32)
    image[30:60, 20:50] += 1.0
    seed = np.zeros((96, 80), bool)
    seed[28:58, 25:55] = True
    clicks = dict(positive=[(45, 30)], negative=[(30, 52)])
    averaged, single = Refiner.load(device="cpu"), Refiner.load(device="cpu", flip_average=False)
    averaged.module, single.module = Counting(averaged.module), Counting(single.module)
    a = averaged.refine_logits(image, seed, **clicks)
    b = single.refine_logits(image, seed, **clicks)
    # The four flips go through the network as one batch of four, the single pass as a batch of one.
    assert (averaged.module.batches, single.module.batches) == ([4], [1])
    assert a.shape == b.shape == (96, 80)
    assert not np.allclose(a, b)  # the shipped refiner is not flip-equivariant
    # The averaged logits are those of the four passes over the flipped model input.
    x = torch.rand(1, 5, 128, 128)
    inner = single.module.inner
    expected = sum(inner(x.flip(d)).flip(d) if d else inner(x) for d in FLIPS) / 4
    assert torch.allclose(averaged.forward(x), expected, atol=1e-5)
    assert torch.allclose(single.forward(x), inner(x))
