"""Refiner training with the label prior (--label-prior): the pool keeps the picked protocol, batches carry it,
and every update adds it as the panel does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.modeling.refine_net import RefineNet
from pancakes.refine.label_prior import label_prior
from pancakes.training.refine.data import PancakesSeedPool
from pancakes.training.refine.prior_batches import batch_prior, stack_priors
from pancakes.training.refine.train import draw_batch, parse, train_iteration, warm_start
from test_refine_pancakes_seeds import _Shapes

torch.set_num_threads(1)


def test_the_pool_keeps_the_picked_protocols_labels_and_confidence(random_model):
    pool = PancakesSeedPool(_Shapes(), random_model, size=4, uses=1, protocols=3, labels=4, core=0.5, with_prior=True)
    for ex, seed, (labels, confidence) in pool.take(np.random.default_rng(0), 4):
        probs = random_model.probabilities(random_model.encode(ex.image[None]), 3, 4)[0]  # [M, K, H, W]
        matches = [m for m in range(3) if np.array_equal(labels, probs[m].argmax(0) + 1)]
        assert matches and any(np.allclose(confidence, probs[m].max(0)) for m in matches)
        assert not (seed & (confidence < 0.5)).any()  # the core lies where the picked label is sure
    with pytest.raises(ValueError, match="needs core"):
        PancakesSeedPool(_Shapes(), random_model, with_prior=True)


def test_batches_carry_priors_only_for_pancakes_seeded_sessions(random_model):
    source = _Shapes()
    pool = PancakesSeedPool(source, random_model, size=8, uses=1, protocols=2, labels=3, core=0.5, with_prior=True)
    images, targets, seeds, (labels, confidence, has) = draw_batch(source, np.random.default_rng(1), 6, pool,
                                                                   share=0.5)
    assert labels.shape == confidence.shape == images.shape and has.dtype == bool
    assert not labels[~has].any() and labels[has].min() >= 1
    pos = [[(10.0, 10.0)]] * 6
    prior = batch_prior((labels, confidence, has), pos).numpy()
    assert not prior[~has].any()
    for i in np.flatnonzero(has):
        np.testing.assert_allclose(prior[i], label_prior(labels[i], confidence[i], pos[i]))
    assert float(batch_prior(None, pos)) == 0.0


def test_updates_add_the_prior_in_warm_clicks_and_in_the_loss():
    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    rng = np.random.default_rng(3)
    images = rng.random((2, 32, 32)).astype(np.float32)
    targets = np.zeros((2, 32, 32), bool)
    targets[:, 8:20, 8:20] = True
    seeds = np.zeros_like(targets)
    labels = np.where(targets, 2, 1).astype(np.int16)
    priors = stack_priors([(labels[0], np.full((32, 32), 0.95, np.float32)), None], (32, 32))
    counts = np.array([2, 2])
    _, _, plain, _ = warm_start(net, images, targets, seeds, counts, np.random.default_rng(0))
    pos, _, helped, _ = warm_start(net, images, targets, seeds, counts, np.random.default_rng(0), priors=priors)
    assert pos[0]  # the first click on an empty start is positive, inside label 2
    assert (helped[0] == targets[0]).all() and not (plain[0] == targets[0]).all()  # the prior finds the label
    np.testing.assert_array_equal(helped[1], plain[1])  # the session without a prior is untouched
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    with_prior = train_iteration(net, opt, images, targets, seeds, 2, np.random.default_rng(0), priors=priors)
    without = train_iteration(net, opt, images, targets, seeds, 2, np.random.default_rng(0))
    assert with_prior < without


def test_label_prior_flag_needs_the_core():
    assert parse(["--out", "x", "--seed-core", "0.8", "--label-prior", "1"]).label_prior == 1
    with pytest.raises(SystemExit):
        parse(["--out", "x", "--label-prior", "1"])
