"""The mask's own intensities near its border (pancakes.refine.intensity_prior): what they add, and where the
Refiner and the benchmark's sessions add them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.model_file import default_metadata, save_torchscript
from pancakes.modeling.refine_net import RefineNet
from pancakes.preprocessing import normalise
from pancakes.refine.intensity_prior import INTENSITY_BAND, INTENSITY_CLIP, INTENSITY_WEIGHT, MIN_PIXELS, intensity_prior
from pancakes.refine.refiner import Refiner
from pancakes.training.refine.simulate import click_curves

torch.set_num_threads(1)


def _disk(shape, radius: float, centre=None) -> np.ndarray:
    """bool [H, W] (``shape``, or an int for a square): a disk of ``radius`` pixels about ``centre`` (default
    the middle)."""
    shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
    r0, c0 = centre if centre is not None else (shape[0] / 2, shape[1] / 2)
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return (rows - r0) ** 2 + (cols - c0) ** 2 <= radius ** 2


def _bright_disk(size: int = 64, radius: float = 12) -> np.ndarray:
    """float32 [size, size]: a 0.8 disk on 0.2, with noise so that both Gaussians have a spread, as real images do."""
    rng = np.random.default_rng(0)
    return (np.where(_disk(size, radius), 0.8, 0.2) + rng.normal(0, 0.06, (size, size))).astype(np.float32)


def _logits(mask: np.ndarray, level: float = 1.0) -> np.ndarray:
    """float32 logits: +level inside ``mask``, -level outside (a network unsure near every border)."""
    return np.where(mask, level, -level).astype(np.float32)


def test_a_mask_short_of_its_edge_is_pulled_out_to_it_and_not_past():
    image = _bright_disk()
    short = _disk(64, 10)  # two pixels short of the bright disk's edge (radius 12)
    extra = intensity_prior(image, _logits(short), positive=[(32, 32)])
    assert extra.dtype == np.float32 and extra.shape == image.shape
    # Just outside the mask but inside the disk: bright like the inside, so pushed in; inside the mask, kept.
    assert extra[32, 32 + 11] > 1.0
    assert extra[32, 32 + 9] > 1.0
    assert extra.max() <= INTENSITY_WEIGHT * INTENSITY_CLIP + 1e-6
    # Beyond the band about the mask's border nothing is said.
    assert extra[32, 32 + 10 + INTENSITY_BAND + 1] == 0 and extra[32, 32] == 0
    # The mask now reaches closer to the edge: the pixels it adds are all inside the disk.
    grown = (_logits(short) + extra) > 0
    assert grown.sum() > short.sum() and not (grown & ~_disk(64, 12)).any()


def test_a_mask_past_its_edge_is_pulled_back():
    image = _bright_disk()
    spilled = _disk(64, 14)  # two pixels past the bright disk's edge
    extra = intensity_prior(image, _logits(spilled), positive=[(32, 32)])
    # Inside the mask but dark (past the disk's edge): pushed out.
    assert extra[32, 32 + 13] < -1.0 and extra[32, 32 + 14] < -1.0
    shrunk = (_logits(spilled) + extra) > 0
    assert shrunk.sum() < spilled.sum() and shrunk[_disk(64, 11)].all()


def test_nothing_is_added_without_a_positive_click_or_a_mask_to_fit():
    image = _bright_disk()
    mask = _disk(64, 9)
    assert not intensity_prior(image, _logits(mask), positive=[]).any()
    tiny = np.zeros((64, 64), bool)
    tiny[32, 32:32 + MIN_PIXELS - 1] = True
    assert not intensity_prior(image, _logits(tiny), positive=[(32, 32)]).any()
    assert not intensity_prior(image, _logits(np.zeros((64, 64), bool)), positive=[(32, 32)]).any()
    # A mask that fills the frame leaves no ring outside it to fit.
    assert not intensity_prior(image, _logits(np.ones((64, 64), bool)), positive=[(32, 32)]).any()


def test_far_from_the_mask_nothing_is_said():
    """A bright region elsewhere is left to the clicks: the term only acts within the band of the border."""
    image = _bright_disk()
    image[2:10, 2:10] = 0.8  # bright like the inside, far from the mask
    extra = intensity_prior(image, _logits(_disk(64, 11)), positive=[(32, 32)])
    assert extra[32, 32 + 11] > 0
    assert not extra[2:10, 2:10].any()
    assert not extra[32, 32]  # deep inside, beyond the band too
    assert extra.any()


@pytest.fixture
def refiner_file(tmp_path):
    torch.manual_seed(0)
    net = RefineNet(features=8, levels=3)
    return save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))


class _Fixed(torch.nn.Module):
    """A refiner that always answers the same logits [S, S] (at the model's 128 x 128), whatever the input."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], 1, *self.logits.shape).clone()


@pytest.mark.parametrize("shape", [(128, 128), (256, 192)])
def test_the_refiner_adds_it_last_in_the_model_frame(refiner_file, shape):
    """At the model's own size the Refiner adds exactly intensity_prior of its other logits; at other sizes it
    is computed in the fitted frame without the padding and resized back, so it still stops at the image's edge."""
    on = Refiner.load(refiner_file, device="cpu", flip_average=False, geodesic=False, focus=False)
    off = Refiner.load(refiner_file, device="cpu", flip_average=False, geodesic=False, focus=False, intensity=False)
    scale = shape[0] / 128
    # In the model frame: 2 model pixels short of the disk's edge (radius 18), and unsure there.
    short = _logits(_disk(128, 16), 0.5)
    for refiner in (on, off):
        refiner.module = _Fixed(short)
    image = np.where(_disk(shape, 18 * scale), 0.8, 0.2).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.06, shape).astype(np.float32)
    click = (shape[0] // 2, shape[1] // 2)
    plain = off.refine_logits(image, None, positive=[click])
    added = on.refine_logits(image, None, positive=[click]) - plain
    assert added.shape == shape
    if shape == (128, 128):  # the Refiner reads the image as normalise gives it
        np.testing.assert_allclose(added, intensity_prior(normalise(image, "image"), plain, [click]), atol=1e-5)
    # Between the mask's border and the disk's edge it pushes in; beyond the edge nothing grows.
    r, c = click
    assert added[r, c + int(17 * scale)] > 0.5
    grown = (plain + added) > 0
    assert grown.sum() > (plain > 0).sum()
    assert not (grown & ~_disk(shape, 18 * scale + 2)).any()
    # No positive click, nothing added; a volume slice goes through the same path.
    np.testing.assert_array_equal(on.refine_logits(image, None, negative=[(5, 5)]),
                                  off.refine_logits(image, None, negative=[(5, 5)]))
    volume = np.stack([image] * 3)
    # (The volume's intensity window differs from the image's by rounding only.)
    np.testing.assert_allclose(on.refine_slice_of_volume(volume, 0, 1, None, [click], []),
                               on.refine_logits(image, None, positive=[click]), atol=1e-3)


def test_sessions_with_it_reach_the_edge_the_network_stops_short_of():
    """click_curves adds it at every update when asked: a refiner that always answers a disk 2 pixels short of
    the target stays there; with the mask's own intensities the mask grows to the target's edge."""
    image = _bright_disk(128, 18)
    target = _disk(128, 18)
    stuck = _Fixed(_logits(_disk(128, 16), 0.5))
    seeds = np.zeros((1, 128, 128), bool)
    alone = click_curves(stuck, image[None], target[None], seeds, 3)
    helped = click_curves(stuck, image[None], target[None], seeds, 3, intensity=True)
    assert helped[0, 1] > alone[0, 1] + 0.05
    assert helped[0, 3] > alone[0, 3] + 0.05
