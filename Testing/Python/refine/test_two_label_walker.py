"""The random walker for one label against its background (pancakes.refine.two_label_walker)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pancakes.refine.two_label_walker import WalkCancelled, label_probability


def _block(shape=(9, 30, 34), seed=0):
    """A noisy bright ellipsoid in a dark block, seeded on its middle slice: (image float32, seeds int32)."""
    rng = np.random.default_rng(seed)
    zz, rr, cc = np.indices(shape)
    c = np.array(shape) / 2
    blob = ((zz - c[0]) / 3.5) ** 2 + ((rr - c[1]) / 9) ** 2 + ((cc - c[2]) / 11) ** 2 <= 1
    image = (np.where(blob, 0.7, 0.3) + rng.normal(0, 0.08, shape)).astype(np.float32)
    seeds = np.zeros(shape, np.int32)
    k = shape[0] // 2
    seeds[k][blob[k]] = 1
    seeds[:, 0], seeds[:, -1], seeds[:, :, 0], seeds[:, :, -1] = 2, 2, 2, 2
    return image, seeds


@pytest.mark.parametrize("beta", [130.0, 8000.0])
def test_it_gives_scikit_images_label_probability(beta):
    from skimage.segmentation import random_walker

    image, seeds = _block()
    spacing = (2.5, 0.8, 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its probabilities stray past [0, 1] at a high beta, and it says so
        expected = random_walker(image, seeds, beta=beta, mode="cg_j", spacing=spacing, return_full_prob=True)[0]
    got = label_probability(image, seeds, spacing, beta)
    assert got.dtype == np.float32 and got.shape == image.shape
    assert np.abs(got - expected).max() < 1e-3
    assert np.array_equal(got > 0.5, expected > 0.5)
    assert (got[seeds == 1] == 1).all() and (got[seeds == 2] == 0).all()


def test_a_block_of_one_intensity_walks_on_equal_weights():
    # A label seed on the first slice, background on the last: equal weights make the probability fall
    # linearly between them (scikit-image divides by the block's zero spread here and gives NaN).
    seeds = np.zeros((5, 4, 4), np.int32)
    seeds[0], seeds[-1] = 1, 2
    got = label_probability(np.full(seeds.shape, 0.5, np.float32), seeds, (1.0, 1.0, 1.0), 8000.0)
    assert np.allclose(got[:, 2, 2], [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-3)


def test_a_block_without_free_voxels_is_its_seeds():
    seeds = np.array([[[1, 2], [2, 1]]], np.int32)
    got = label_probability(np.zeros(seeds.shape, np.float32), seeds, (1.0, 1.0, 1.0), 8000.0)
    assert np.array_equal(got, (seeds == 1).astype(np.float32))


def test_cancel_is_asked_during_the_solve_and_stops_it():
    image, seeds = _block(shape=(15, 60, 70))
    asked = []

    def cancel() -> bool:
        asked.append(True)
        return len(asked) >= 2

    with pytest.raises(WalkCancelled):
        label_probability(image, seeds, (1.0, 1.0, 1.0), 8000.0, cancel)
    assert len(asked) == 2
    # Never cancelled: asked as it goes, and the solve ends.
    quiet = []
    label_probability(image, seeds, (1.0, 1.0, 1.0), 8000.0, lambda: quiet.append(True) or False)
    assert len(quiet) >= 1
