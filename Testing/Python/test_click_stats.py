"""Click-curve summaries of the refinement benchmark and their bootstrap intervals."""
import numpy as np
import pytest

from pancakes.refine.click_stats import bootstrap_click_stats, noc, plateau_clicks


def test_plateau_is_the_first_click_reaching_95_percent_of_the_gain():
    assert plateau_clicks(np.array([0.0, 0.5, 0.9, 0.96, 1.0])) == 3
    assert plateau_clicks(np.array([0.4, 0.4, 0.4])) == 0  # no gain: plateau at once


def test_noc_counts_sessions_that_never_reach_the_level_as_the_budget():
    curves = np.array([[0.0, 0.85, 0.9], [0.0, 0.1, 0.2]])
    assert noc(curves, 0.8) == pytest.approx((1 + 2) / 2)


def _curves(plateau_at, n, clicks=10):
    c = np.minimum(np.arange(clicks + 1) / plateau_at, 1.0)
    return np.tile(c, (n, 1))


def test_identical_sessions_give_point_intervals_and_the_half_target():
    seeded, empty = _curves(3, 12), _curves(6, 12)
    seeded[:, 0] = 0.0
    iv = bootstrap_click_stats(seeded, empty, groups=np.repeat(np.arange(4), 3), n_boot=200)
    assert iv["plateau seeded"] == (3.0, 3.0) and iv["plateau empty"] == (6.0, 6.0)
    assert iv["half the clicks"] == (1.0, 1.0)
    assert iv["first click gain seeded"] == pytest.approx((100 / 3, 100 / 3))


def test_mixed_sets_give_wide_intervals_and_a_partial_share():
    # Half the sets plateau early from the seed, half late: the pooled plateau depends on the draw.
    seeded = np.concatenate([_curves(1, 10), _curves(9, 10)])
    empty = _curves(6, 20)
    groups = np.repeat(np.arange(10), 2)  # 5 early sets, then 5 late sets
    iv = bootstrap_click_stats(seeded, empty, groups, n_boot=500, seed=1)
    lo, hi = iv["plateau seeded"]
    assert lo < hi
    assert 0.0 < iv["half the clicks"][0] < 1.0
