"""Training-free baselines: shapes, label ranges, and behaviour on images with known structure."""
from __future__ import annotations

import numpy as np
import pytest

from pancakes.evaluation import baselines, metrics


def _images(S: int = 2, size: int = 48) -> np.ndarray:
    """Disc + bar + noise, with contrast varying per image. Returns float32 [S, size, size]."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    bar = xx > 0.75 * size
    out = [0.1 + (0.4 + 0.1 * s) * disc + 0.3 * bar + 0.03 * rng.standard_normal((size, size))
           for s in range(S)]
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def test_label_counts():
    np.testing.assert_array_equal(baselines.label_counts(8, 20), [2, 5, 7, 10, 12, 15, 17, 20])
    np.testing.assert_array_equal(baselines.label_counts(1, 6), [6])
    np.testing.assert_array_equal(baselines.label_counts(3, 1), [1, 1, 1])
    with pytest.raises(ValueError):
        baselines.label_counts(0, 5)


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_shapes_and_label_range(name):
    images = _images()
    M, K = 4, 9
    maps = baselines.BASELINES[name](images, M=M, K=K, seed=0)
    assert maps.shape == (2, M, 48, 48)
    assert np.issubdtype(maps.dtype, np.integer)
    assert maps.min() >= 1 and maps.max() <= K
    counts = baselines.label_counts(M, K)
    for s in range(2):
        for m in range(M):
            values = np.unique(maps[s, m])
            assert len(values) <= counts[m]
            assert values.max() <= counts[m]
    if name != "trivial":
        # A real baseline must split this structured image into more than one label.
        assert metrics.label_usage(maps)["labels_per_protocol"] > 1.5


def test_multi_otsu_separates_three_levels():
    image = np.full((30, 30), 0.1, dtype=np.float32)
    image[:, 10:20] = 0.5
    image[:, 20:] = 0.9
    maps = baselines.multi_otsu(image[None], M=2, K=3)   # counts 2 and 3
    expected = np.ones((30, 30), dtype=np.int64)
    expected[:, 10:20] = 2
    expected[:, 20:] = 3
    np.testing.assert_array_equal(maps[0, 1], expected)
    # With more classes than grey levels it falls back to quantiles without failing.
    many = baselines.multi_otsu(image[None], M=1, K=8)
    assert len(np.unique(many)) <= 3


def test_multi_otsu_quantiles_above_five_classes():
    image = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    maps = baselines.multi_otsu(image[None], M=1, K=10)
    # Equal-population thresholds on a ramp: ten labels of equal size.
    sizes = np.bincount(maps.ravel())[1:]
    assert len(sizes) == 10 and sizes.min() == sizes.max() == 160


def test_kmeans_orders_labels_by_intensity_across_images():
    base = np.full((32, 32), 0.1, dtype=np.float32)
    base[8:24, 8:24] = 0.5
    base[12:20, 12:20] = 0.9
    # Second image: different contrast, same order of structures, with noise.
    rng = np.random.default_rng(0)
    other = (0.3 + 0.5 * (base - 0.1) + 0.01 * rng.standard_normal(base.shape)).astype(np.float32)
    maps = baselines.kmeans_intensity(np.stack([base, other]), M=1, K=3)
    np.testing.assert_array_equal(maps[0, 0], maps[1, 0])
    assert maps[0, 0, 0, 0] == 1 and maps[0, 0, 16, 16] == 3 and maps[0, 0, 9, 9] == 2
    # Consistent order means one label matches the middle ring in both images.
    ring = (base == 0.5)
    score, _, k = metrics.set_dice(maps, np.stack([ring, ring]))
    assert score == pytest.approx(1.0) and k == 1


def test_over_segmenters_follow_intensity_order():
    images = _images(S=1)
    for fn in (baselines.slic, baselines.felzenszwalb):
        labels = fn(images, M=1, K=4)[0, 0]
        means = [images[0][labels == v].mean() for v in np.unique(labels)]
        assert means == sorted(means)


def test_trivial_set_dice_is_full_image_dice():
    images = _images(S=3)
    targets = images > 0.45
    maps = baselines.trivial(images, M=2, K=5)
    assert np.all(maps == 1)
    full = np.ones(images.shape[1:], dtype=bool)
    expected = np.mean([metrics.dice(full, t) for t in targets])
    score, _, k = metrics.set_dice(maps, targets)
    assert k == 0 and score == pytest.approx(expected)


def test_rejects_bad_images():
    with pytest.raises(ValueError):
        baselines.kmeans_intensity(np.zeros((4, 4), dtype=np.float32))
