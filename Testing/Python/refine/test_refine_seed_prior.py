"""The seed prior: what the refiner's previous channel holds before the first click.

A refiner trained with ``--seed-prior p`` saw seed pixels at probability p (1 - p
elsewhere) before its first step; the Refiner, the training loop and the benchmarks'
click simulation must all feed that same value, read from the model's metadata.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pancakes.model_file import default_metadata, save_torchscript
from pancakes.refine.refiner import Refiner
from pancakes.training.refine.simulate import click_curves, seed_probability
from pancakes.training.refine.train import warm_start

torch.set_num_threads(1)
SIZE = 32


class PreviousAsLogits(nn.Module):
    """Returns the logit of its previous-prediction channel: shows what the caller fed there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x[:, 4:5].clamp(1e-4, 1 - 1e-4))


def _echo_refiner(tmp_path, **extra) -> Refiner:
    net = PreviousAsLogits()
    path = save_torchscript(net, tmp_path / "echo.pt", default_metadata(net, kind="refine", input_size=SIZE, **extra))
    return Refiner.load(path, device="cpu")


def _square_seed() -> np.ndarray:
    seed = np.zeros((SIZE, SIZE), bool)
    seed[8:20, 10:22] = True
    return seed


def test_seed_probability_gives_the_prior_inside_and_its_complement_outside():
    p = seed_probability(_square_seed(), 0.75)
    assert p.dtype == np.float32
    assert set(np.unique(p[_square_seed()])) == {np.float32(0.75)}
    assert set(np.unique(p[~_square_seed()])) == {np.float32(0.25)}
    assert np.array_equal(seed_probability(_square_seed()), _square_seed().astype(np.float32))


@pytest.mark.parametrize("prior", [0.4, 1.2, float("nan")])
def test_seed_probability_refuses_a_prior_that_is_no_probability_above_a_half(prior):
    with pytest.raises(ValueError, match="seed prior"):
        seed_probability(_square_seed(), prior)


def test_refiner_feeds_the_prior_from_its_metadata(tmp_path):
    image = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    logits = _echo_refiner(tmp_path, seed_prior=0.75).refine_logits(image, _square_seed())
    inside, outside = logits[_square_seed()], logits[~_square_seed()]
    assert np.allclose(inside, math.log(3), atol=1e-3) and np.allclose(outside, -math.log(3), atol=1e-3)


def test_refiner_without_a_prior_in_its_metadata_feeds_the_seed_as_certain(tmp_path):
    # Refiners shipped before the prior existed were trained on the seed as 0 / 1.
    image = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    logits = _echo_refiner(tmp_path).refine_logits(image, _square_seed())
    assert logits[_square_seed()].min() > 9 and logits[~_square_seed()].max() < -9


def test_a_given_previous_result_wins_over_the_prior(tmp_path):
    image = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    previous = np.full((SIZE, SIZE), 0.9, np.float32)
    logits = _echo_refiner(tmp_path, seed_prior=0.75).refine_logits(image, _square_seed(), previous=previous)
    assert np.allclose(logits, math.log(9), atol=1e-3)


def test_training_and_benchmark_sessions_start_from_the_prior():
    net = PreviousAsLogits()
    net.dummy = nn.Parameter(torch.zeros(1))  # warm_start reads the device from the parameters
    seeds = _square_seed()[None].repeat(2, 0)
    images = np.zeros_like(seeds, np.float32)
    targets = np.zeros_like(seeds)
    rng = np.random.default_rng(0)
    *_, previous = warm_start(net, images, targets, seeds, np.zeros(2, int), rng, seed_prior=0.8)
    assert np.allclose(previous, seed_probability(seeds, 0.8))
    # One click-free step of the echo module keeps prior > 0.5 inside: the mask stays the seed.
    curves = click_curves(net, images, seeds, seeds, n_clicks=1, seed_prior=0.8)
    assert np.allclose(curves, 1.0)
    curves = click_curves(net, images, seeds, seeds, n_clicks=1, seed_prior=0.5)
    assert np.allclose(curves[:, 1], 0.0)  # p = 0.5 is logit 0: nothing counts as inside


def test_train_command_saves_the_prior_and_refuses_a_bad_one(tmp_path, monkeypatch):
    from pancakes.training.refine.train import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    common = ["--synthetic-only", "--templates", "1", "--batch", "2", "--steps-per-sample", "1",
              "--features", "8", "--levels", "3", "--val-every", "1e9", "--pancakes-share", "0"]
    assert main(["--out", str(tmp_path / "run"), "--max-iterations", "1", "--seed-prior", "0.8", *common]) == 0
    assert Refiner.load(tmp_path / "run" / "refine.pt", device="cpu").seed_prior == pytest.approx(0.8)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "bad"), "--max-iterations", "1", "--seed-prior", "1.5", *common])
