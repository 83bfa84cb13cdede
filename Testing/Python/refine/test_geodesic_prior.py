"""The clicks' geodesic reach (pancakes.refine.geodesic_prior): what it adds, and where the Refiner and the
benchmark's sessions add it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.model_file import default_metadata, save_torchscript
from pancakes.modeling.refine_net import RefineNet
from pancakes.refine.geodesic_prior import GEODESIC_WEIGHT, edge_cost, geodesic_prior
from pancakes.refine.refiner import Refiner
from pancakes.training.refine.simulate import click_curves

torch.set_num_threads(1)


def _two_regions(size: int = 64) -> np.ndarray:
    """float32 [size, size]: 0.2 left of the middle column, 0.8 right of it (one sharp vertical edge)."""
    image = np.full((size, size), 0.2, np.float32)
    image[:, size // 2:] = 0.8
    return image


def test_a_click_reaches_further_along_its_region_than_across_an_edge():
    image = _two_regions()
    extra = geodesic_prior(image, positive=[(32, 24)], negative=[])
    assert extra.dtype == np.float32 and extra.shape == image.shape
    assert extra[32, 24] == pytest.approx(GEODESIC_WEIGHT)  # distance 0 at the click
    # Both 16 pixels from the click: up its own region, and across the edge.
    along, across = extra[16, 24], extra[32, 40]
    assert along > 2 * across > 0
    # Without edges the cost is flat and the two are alike: the difference comes from the image.
    flat = geodesic_prior(np.full_like(image, 0.5), positive=[(32, 24)], negative=[])
    assert flat[16, 24] == pytest.approx(flat[32, 40], rel=1e-6)
    assert along == pytest.approx(flat[16, 24], rel=0.05)


def test_negative_clicks_push_out_and_no_click_adds_nothing():
    image = _two_regions()
    assert not geodesic_prior(image, [], []).any()
    extra = geodesic_prior(image, positive=[(32, 10)], negative=[(32, 50)])
    assert extra[32, 10] > 0 > extra[32, 50]
    assert extra[32, 50] == pytest.approx(-GEODESIC_WEIGHT, abs=1e-3)
    # Clicks off the frame by rounding are clipped onto it rather than refused.
    assert geodesic_prior(image, positive=[(63.6, -0.4)], negative=[])[63, 0] == pytest.approx(GEODESIC_WEIGHT)


def test_the_step_cost_is_one_on_flat_images_and_rises_at_edges():
    assert np.array_equal(edge_cost(np.zeros((8, 8))), np.ones((8, 8)))
    cost = edge_cost(_two_regions())
    assert cost[32, 31] > 10 and cost[32, 5] == pytest.approx(1.0, abs=1e-3)


@pytest.fixture
def refiner_file(tmp_path):
    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    return save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))


@pytest.mark.parametrize("shape", [(128, 128), (200, 150)])
def test_the_refiner_adds_the_reach_computed_in_the_model_frame(refiner_file, shape):
    """On the model's own size the Refiner adds exactly geodesic_prior of the image; on other sizes the reach
    is computed in the fitted frame and resized back with the logits, so it still follows the image's edges."""
    image = np.zeros(shape, np.float32)
    image[:, shape[1] // 2:] = 1.0
    click = (shape[0] // 2, shape[1] // 4)
    # Without the mask's own intensities, which depend on the logits the reach changes (test_intensity_prior.py).
    on = Refiner.load(refiner_file, device="cpu", flip_average=False, intensity=False)
    off = Refiner.load(refiner_file, device="cpu", flip_average=False, geodesic=False, intensity=False)
    added = on.refine_logits(image, None, positive=[click]) - off.refine_logits(image, None, positive=[click])
    assert added.shape == shape
    if shape == (128, 128):
        np.testing.assert_allclose(added, geodesic_prior(image, [click], []), atol=1e-4)
    # Along the clicked (left) half the reach stays high; across the edge, at the same distance, it is gone.
    r, c = click
    assert added[r, c] == pytest.approx(GEODESIC_WEIGHT, rel=0.05)
    d = shape[1] // 2 - c + 2  # from the click to just across the edge
    along, across = added[r - d, c], added[r, c + d]
    assert along > 0.5 and abs(across) < 0.2 * along
    # No click, nothing added; a volume slice goes through the same path.
    np.testing.assert_array_equal(on.refine_logits(image, None), off.refine_logits(image, None))
    volume = np.stack([image] * 3)
    np.testing.assert_allclose(on.refine_slice_of_volume(volume, 0, 1, None, [click], []),
                               on.refine_logits(image, None, positive=[click]), atol=1e-4)


def test_without_scikit_image_the_refiner_warns_and_refines_without_the_reach(refiner_file, monkeypatch):
    """Slicer's own Python may lack scikit-image: the Refiner must still load and refine, as the engine does
    without its superpixels."""
    import pancakes.refine.refiner as refiner_module

    monkeypatch.setattr(refiner_module, "skimage_available", lambda: False)
    with pytest.warns(UserWarning, match="scikit-image is not installed"):
        refiner = Refiner.load(refiner_file, device="cpu", flip_average=False)
    assert refiner.geodesic is False
    plain = Refiner.load(refiner_file, device="cpu", flip_average=False, geodesic=False)
    image = _two_regions()
    np.testing.assert_array_equal(refiner.refine_logits(image, None, positive=[(32, 10)]),
                                  plain.refine_logits(image, None, positive=[(32, 10)]))


class _Unsure(torch.nn.Module):
    """A refiner that has no opinion: logits -0.1 everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], -0.1)


def test_sessions_with_the_reach_fill_the_clicked_region():
    """click_curves adds the reach at every update when asked: the unsure refiner alone never finds the target;
    with the reach, one positive click fills the clicked half, bounded by its edge."""
    image = _two_regions(32)
    target = image < 0.5
    seeds = np.zeros((1, 32, 32), bool)
    alone = click_curves(_Unsure(), image[None], target[None], seeds, 1)
    helped = click_curves(_Unsure(), image[None], target[None], seeds, 1, geodesic=True)
    assert alone[0, 1] == 0.0 and helped[0, 1] > 0.9
