"""The chosen protocol's label prior (pancakes.refine.label_prior): what it adds, and where the Refiner and the
benchmark's sessions add it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.errors import PancakesInputError
from pancakes.model_file import default_metadata, save_torchscript
from pancakes.modeling.refine_net import RefineNet
from pancakes.refine.label_prior import PRIOR_BIAS, PRIOR_WEIGHT, label_prior
from pancakes.refine.refiner import Refiner
from pancakes.training.refine.simulate import click_curves

torch.set_num_threads(1)


def _protocol(shape=(12, 10)):
    """Labels 1 (left half) and 2 (right half); confidence 0.9 on the left, 0.5 on the right."""
    labels = np.ones(shape, np.int16)
    labels[:, shape[1] // 2:] = 2
    confidence = np.where(labels == 1, 0.9, 0.5).astype(np.float32)
    return labels, confidence


def test_pixels_sharing_a_positive_clicks_label_are_pushed_in_and_the_rest_out():
    labels, confidence = _protocol()
    prior = label_prior(labels, confidence, [(3.2, 1.8)])  # on label 1, confidence 0.9
    assert prior.dtype == np.float32 and prior.shape == labels.shape
    np.testing.assert_allclose(prior[labels == 1], PRIOR_WEIGHT * (0.9 * 0.9 - PRIOR_BIAS), rtol=1e-6)
    np.testing.assert_allclose(prior[labels == 2], -PRIOR_WEIGHT * PRIOR_BIAS, rtol=1e-6)
    # A second click on label 2 lifts label 2 by its own, lower confidence: 0.5 * 0.5 - bias < 0 still.
    both = label_prior(labels, confidence, [(3, 1), (4, 8)])
    np.testing.assert_allclose(both[labels == 2], PRIOR_WEIGHT * (0.25 - PRIOR_BIAS), rtol=1e-6)
    assert (both[labels == 2] > prior[labels == 2]).all()


def test_no_positive_click_adds_nothing_and_confidence_bytes_read_as_probabilities():
    labels, confidence = _protocol()
    assert not label_prior(labels, confidence, []).any()
    as_bytes = np.floor(confidence * 255).astype(np.uint8)
    np.testing.assert_allclose(label_prior(labels, as_bytes, [(0, 0)]), label_prior(labels, confidence, [(0, 0)]),
                               atol=PRIOR_WEIGHT * 2 / 255)


@pytest.mark.parametrize("labels, confidence, match", [
    (np.ones((4, 4), np.int16), np.ones((4, 5), np.float32), "must both have the image's shape"),
    (np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), "labels must be integers"),
    (np.ones((4, 4), np.int16), np.full((4, 4), np.nan, np.float32), "finite and lie in"),
    (np.ones((4, 4), np.int16), np.full((4, 4), 1.5, np.float32), "finite and lie in"),
])
def test_bad_priors_are_refused_with_one_line(labels, confidence, match):
    with pytest.raises(PancakesInputError, match=match):
        label_prior(labels, confidence, [(1, 1)])


@pytest.fixture
def refiner(tmp_path):
    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    path = save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    # Without the mask's own intensities, which are computed on the logits the prior changes (test_intensity_prior.py).
    return Refiner.load(path, device="cpu", flip_average=False, intensity=False)


def test_the_refiner_adds_the_prior_to_its_logits_and_checks_it_first(refiner):
    image = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    labels, confidence = _protocol()
    plain = refiner.refine_logits(image, None, positive=[(3, 2)])
    with_prior = refiner.refine_logits(image, None, positive=[(3, 2)], label_prior=(labels, confidence))
    np.testing.assert_allclose(with_prior, plain + label_prior(labels, confidence, [(3, 2)]), atol=1e-5)
    # A volume slice goes through the same path, and propagation's neighbours get none.
    volume = np.stack([image] * 3)
    mask, logits = refiner.refine_volume_slice(volume, 0, 1, None, [(3, 2)], [], propagate=False, with_logits=True,
                                               label_prior=(labels, confidence))
    np.testing.assert_allclose(logits, refiner.refine_slice_of_volume(volume, 0, 1, None, [(3, 2)], [],
                                                                      label_prior=(labels, confidence)), atol=1e-6)
    with pytest.raises(PancakesInputError, match="label_prior: expected"):
        refiner.refine_logits(image, None, positive=[(3, 2)], label_prior=labels)
    with pytest.raises(PancakesInputError, match="image's shape"):
        refiner.refine_logits(image, None, positive=[(3, 2)], label_prior=(labels[:5], confidence[:5]))


class _Unsure(torch.nn.Module):
    """A refiner that has no opinion: logits -0.1 everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], -0.1)


def test_sessions_with_priors_follow_the_clicked_label():
    """click_curves adds the prior at every update: the unsure refiner alone never finds the target, with the
    prior the first positive click gives the clicked label where it is sure."""
    labels, confidence = _protocol((16, 16))
    target = labels == 1
    images = np.zeros((1, 16, 16), np.float32)
    seeds = np.zeros((1, 16, 16), bool)
    alone = click_curves(_Unsure(), images, target[None], seeds, 2)
    helped = click_curves(_Unsure(), images, target[None], seeds, 2, priors=(labels[None], confidence[None]))
    assert alone[0, 1] == 0.0 and helped[0, 1] == pytest.approx(1.0)
