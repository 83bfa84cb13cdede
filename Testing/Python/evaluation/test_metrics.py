"""Set Dice / Set IoU / Set surface distance on hand-made cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from pancakes.evaluation import metrics


def _square(shape=(32, 32), top=8, left=8, size=10) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_dice_basic_and_empty():
    a = _square(size=10)                       # 100 pixels
    b = np.zeros_like(a)
    b[8:18, 8:13] = True                       # left half of a: 50 pixels
    assert metrics.dice(a, a) == pytest.approx(1.0)
    assert metrics.dice(b, a) == pytest.approx(2 * 50 / 150)
    empty = np.zeros_like(a)
    assert metrics.dice(empty, empty) == 1.0
    assert metrics.dice(empty, a) == 0.0
    stacked = metrics.dice(np.stack([a, b, empty]), a)
    np.testing.assert_allclose(stacked, [1.0, 2 / 3, 0.0])


def _two_image_set():
    """Label 3 of protocol 1 is image 0's target exactly and half of image 1's target."""
    S, M, H, W = 2, 2, 32, 32
    targets = np.stack([_square(), _square()])
    maps = np.ones((S, M, H, W), dtype=np.int64)
    maps[0, 1][targets[0]] = 3
    half = targets[1].copy()
    half[:, 13:] = False                        # keep columns 8..12: 50 of 100 pixels
    maps[1, 1][half] = 3
    maps[1, 1][targets[1] & ~half] = 2
    return maps, targets


def test_set_dice_known_value():
    maps, targets = _two_image_set()
    expected = (1.0 + 2 * 50 / 150) / 2
    score, m, k = metrics.set_dice(maps, targets)
    assert (m, k) == (1, 2)                    # label value 3 is k = 2
    assert score == pytest.approx(expected)
    table = metrics.set_scores(maps, targets)
    assert table.shape == (2, 3)
    assert table[1, 2] == pytest.approx(expected)
    # Label 1 covers the whole image in protocol 0: Dice 2*100 / (1024 + 100) on both.
    assert table[0, 0] == pytest.approx(200 / 1124)
    # Protocol 0 never uses labels 2 or 3 and the targets are not empty: they score 0.
    assert table[0, 1] == 0.0 and table[0, 2] == 0.0


def test_label_zero_is_not_scored():
    target = _square()[None]
    maps = np.zeros((1, 1, 32, 32), dtype=np.int64)
    maps[0, 0][target[0]] = 0                   # the target is "outside"
    maps[0, 0][~target[0]] = 1
    score, _, k = metrics.set_dice(maps, target)
    assert k == 0 and score == 0.0


def test_consistency_penalised():
    """Matching each image with a different label is perfect at S=1 but not at S=2."""
    targets = np.stack([_square(), _square(top=14, left=14)])
    maps = np.ones((2, 1, 32, 32), dtype=np.int64)
    maps[0, 0][targets[0]] = 2
    maps[1, 0][targets[1]] = 3
    single = [metrics.set_dice(maps[s:s + 1], targets[s:s + 1])[0] for s in range(2)]
    assert single == [pytest.approx(1.0), pytest.approx(1.0)]
    pair, _, _ = metrics.set_dice(maps, targets)
    assert pair < 0.6
    # The same labels used consistently keep the set score at 1.
    maps[1, 0][targets[1]] = 2
    assert metrics.set_dice(maps, targets)[0] == pytest.approx(1.0)


def test_iou_relates_to_dice():
    rng = np.random.default_rng(0)
    maps = rng.integers(1, 5, size=(1, 3, 24, 24))
    target = rng.random((1, 24, 24)) < 0.3
    d = metrics.set_scores(maps, target, "dice")
    j = metrics.set_scores(maps, target, "iou")
    # Per image IoU = D / (2 - D); at S = 1 that carries over to the set tables.
    np.testing.assert_allclose(j, d / (2 - d))
    assert metrics.set_iou(maps, target)[1:] == metrics.set_dice(maps, target)[1:]
    with pytest.raises(ValueError):
        metrics.set_scores(maps, target, "hausdorff")


def test_empty_target_prefers_absent_label():
    target = np.zeros((1, 16, 16), dtype=bool)
    maps = np.ones((1, 1, 16, 16), dtype=np.int64)
    maps[0, 0, :4] = 2
    table = metrics.set_scores(maps, target)
    np.testing.assert_allclose(table, [[0.0, 0.0]])
    maps[0, 0, :] = 1                         # label 2 now absent, like the target
    table = metrics.set_scores(maps, target, K=2)
    np.testing.assert_allclose(table, [[0.0, 1.0]])


def test_fixed_k_columns():
    maps, targets = _two_image_set()
    table = metrics.set_scores(maps, targets, K=5)
    assert table.shape == (2, 5)
    np.testing.assert_allclose(table[:, :3], metrics.set_scores(maps, targets))
    np.testing.assert_allclose(table[:, 3:], 0.0)   # never used, targets not empty
    with pytest.raises(ValueError):
        metrics.set_scores(maps, targets, K=2)


def test_surface_distance_shifted_lines_and_spacing():
    a = np.zeros((32, 32), dtype=bool)
    b = np.zeros_like(a)
    a[10, 5:21] = True
    b[15, 5:21] = True                          # every pixel's nearest is straight below
    assert metrics.surface_distance(a, b) == pytest.approx(5.0)
    assert metrics.surface_distance(a, b, spacing=(2.0, 1.0)) == pytest.approx(10.0)
    assert metrics.surface_distance(a, a) == 0.0


def test_surface_distance_shifted_square_and_empty():
    a = _square(size=10)
    b = _square(size=10, left=11)               # shifted right by 3
    d = metrics.surface_distance(a, b)
    # Left and right walls sit 3 apart; top and bottom walls partly coincide.
    assert 0.0 < d < 3.0
    assert metrics.surface_distance(a, np.roll(a, 6, axis=1)) > d
    empty = np.zeros_like(a)
    assert metrics.surface_distance(empty, empty) == 0.0
    assert metrics.surface_distance(empty, a) == pytest.approx(np.hypot(32, 32))


def test_set_surface_distance_picks_closest_label():
    targets = np.stack([_square(), _square()])
    maps = np.ones((2, 2, 32, 32), dtype=np.int64)
    maps[:, 0][targets] = 2                    # protocol 0, label 2: exact
    shifted = np.roll(targets, 3, axis=2)
    maps[:, 1][shifted] = 4                    # protocol 1, label 4: 3 pixels off
    dist, m, k = metrics.set_surface_distance(maps, targets)
    assert (dist, m, k) == (0.0, 0, 1)
    # Without the exact protocol the shifted label wins, at a known per-image distance.
    dist, m, k = metrics.set_surface_distance(maps[:, 1:], targets, candidates=0)
    assert (m, k) == (0, 3)
    assert dist == pytest.approx(metrics.surface_distance(shifted[0], targets[0]))


def test_label_usage_detects_collapse():
    collapsed = np.full((2, 3, 8, 8), 5, dtype=np.int64)
    assert metrics.label_usage(collapsed) == {"labels_per_protocol": 1.0, "largest_share": 1.0}
    maps = np.ones((1, 2, 8, 8), dtype=np.int64)
    maps[0, 0, :4] = 2                         # two labels, half each
    maps[0, 1, :2] = 2
    maps[0, 1, 2:4] = 3                        # three labels, largest share 1/2
    usage = metrics.label_usage(maps)
    assert usage["labels_per_protocol"] == pytest.approx(2.5)
    assert usage["largest_share"] == pytest.approx(0.5)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.set_dice(np.ones((2, 1, 8, 8), dtype=int), np.ones((1, 8, 8), dtype=bool))
