"""Superpixel pooling (pancakes.superpixel_pooling): label boundaries move onto the image's edges,
probabilities stay probabilities, padding is left alone, and every decode path applies it."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from pancakes.errors import PancakesInputError
from pancakes.engine import Pancakes
from pancakes.superpixel_pooling import pool_in_superpixels, pool_probabilities, superpixels


def _step_image(size: int = 64, edge: int = 24) -> torch.Tensor:
    """[1, 1, size, size]: dark left of column ``edge``, bright from it on."""
    img = torch.full((1, 1, size, size), 0.2)
    img[..., edge:] = 0.8
    return img


def _soft_boundary_logits(size: int = 64, at: float = 30.0, K: int = 3) -> torch.Tensor:
    """[1, 1, K, size, size]: label 0 left of column ``at``, label 1 right of it, a soft ramp between
    (as a network's boundary drawn a few pixels off); label 2 never wins."""
    cols = torch.arange(size, dtype=torch.float32)
    ramp = ((cols - at) / 8.0).expand(size, size)
    logits = torch.full((1, 1, K, size, size), -6.0)
    logits[0, 0, 0] = -ramp
    logits[0, 0, 1] = ramp
    return logits


def test_pooling_replaces_the_blend_share_by_the_region_mean():
    prob = torch.tensor([[[1.0, 0.0, 0.5, 0.5]], [[0.0, 1.0, 0.5, 0.5]]])  # [C=2, H=1, W=4]
    regions = torch.tensor([[0, 0, 1, 1]])
    np.testing.assert_allclose(pool_probabilities(prob, regions, 1.0).numpy(),
                               [[[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]]])
    np.testing.assert_allclose(pool_probabilities(prob, regions, 0.5)[0, 0].numpy(), [0.75, 0.25, 0.5, 0.5])
    # Computed in place, but never in the caller's tensor.
    np.testing.assert_array_equal(prob[:, 0, 0].numpy(), [1.0, 0.0])


def test_a_boundary_drawn_off_the_edge_moves_onto_it():
    """The network's boundary at column 36, the image's edge at 24: half of each pixel's probability
    comes from its region, so the boundary moves most of the way to the edge (to column 32)."""
    img, logits = _step_image(), _soft_boundary_logits(at=36.0)
    before = logits.argmax(2)[0, 0, 32]
    after = pool_in_superpixels(logits.clone(), img).argmax(2)[0, 0, 32]
    first = int(torch.nonzero(after == 1)[0])
    assert int(torch.nonzero(before == 1)[0]) >= 36 and 24 <= first <= 33
    assert (after[:first] == 0).all() and (after[first:] == 1).all()


def test_outputs_are_log_probabilities_that_sum_to_one():
    img = torch.rand(2, 1, 32, 32)
    out = pool_in_superpixels(torch.randn(2, 3, 5, 32, 32), img)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp().sum(2), torch.ones(2, 3, 32, 32), atol=1e-4, rtol=0)


def test_padding_outside_the_image_is_left_alone_and_blend_zero_is_off():
    img, logits = _step_image(), _soft_boundary_logits()
    inner = (0, 8, 64, 48)  # columns 0..7 and 56..63 are padding
    out = pool_in_superpixels(logits.clone(), img, inner)
    ref = torch.log_softmax(logits, 2)
    torch.testing.assert_close(out[..., :8], ref[..., :8])
    torch.testing.assert_close(out[..., 56:], ref[..., 56:])
    assert not torch.allclose(out[..., 8:56], ref[..., 8:56])
    assert pool_in_superpixels(logits, img, blend=0.0) is logits


def test_superpixels_follow_a_step_edge():
    regions = superpixels(_step_image()[0, 0].numpy())
    left, right = set(np.unique(regions[:, :24])), set(np.unique(regions[:, 24:]))
    assert regions.dtype == np.int64 and not left & right


def test_engine_pools_every_path_and_can_be_turned_off(random_model_path):
    rng = np.random.default_rng(3)
    images = [rng.random((40, 30)).astype(np.float32)]
    model = Pancakes.load(random_model_path, device="cpu")
    plain = Pancakes.load(random_model_path, device="cpu", superpixels=False)
    assert model.superpixels and not plain.superpixels
    assert not np.array_equal(model.segment(images, 4, 9), plain.segment(images, 4, 9))
    vol = sitk.GetImageFromArray(rng.random((3, 24, 20)).astype(np.float32))
    cached = [sitk.GetArrayFromImage(i) for i in model.predictor(vol).decode(3, 7)]
    streamed = [sitk.GetArrayFromImage(i) for i in model.predictor(vol).segment(3, 7)]
    unpooled = [sitk.GetArrayFromImage(i) for i in plain.predictor(vol).decode(3, 7)]
    for a, b in zip(cached, streamed):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(cached, unpooled))
    with pytest.raises(PancakesInputError, match="superpixels='yes'"):
        model.set_superpixels("yes")


def test_without_scikit_image_the_engine_loads_and_decodes_unpooled(random_model_path, monkeypatch):
    """Slicer's Python may lack scikit-image: the engine must still load, say so once, and decode unpooled."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    with pytest.warns(UserWarning, match="scikit-image is not installed"):
        model = Pancakes.load(random_model_path, device="cpu")
    assert model.superpixels is False
    images = [np.random.default_rng(5).random((30, 30)).astype(np.float32)]
    plain = Pancakes.load(random_model_path, device="cpu", superpixels=False)
    np.testing.assert_array_equal(model.segment(images, 3, 5), plain.segment(images, 3, 5))
