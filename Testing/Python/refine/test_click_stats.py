"""Click-curve summaries of the refinement benchmark and their bootstrap intervals."""
import numpy as np
import pytest

from pancakes.training.refine.click_stats import (bootstrap_click_stats, clicks_to_reach, empty_clicks_worth, noc,
                                                    plateau_clicks)


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


def test_clicks_to_reach_is_the_first_click_at_the_level_or_none():
    empty = np.array([0.0, 0.6, 0.8, 0.85, 0.86, 0.86])
    seeded = np.array([0.4, 0.7, 0.84, 0.86, 0.9, 0.9])
    level = empty[plateau_clicks(empty)]  # 0.85 at click 3
    assert clicks_to_reach(seeded, level) == 3
    assert clicks_to_reach(seeded, 0.7) == 1
    assert clicks_to_reach(seeded, 0.95) is None


def test_reaching_the_empty_plateau_is_scored_apart_from_the_seeded_curves_own_plateau():
    # From the seed: level with the empty plateau after one click, then still climbing, so
    # its own plateau (95 % of its larger gain) comes late; the paper's form counts the click.
    empty = np.tile(np.array([0.0, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]), (6, 1))
    seeded = np.tile(np.linspace(0.4, 1.0, 11), (6, 1))
    seeded[:, 1] = 0.8
    iv = bootstrap_click_stats(seeded, empty, groups=np.repeat(np.arange(3), 2), n_boot=100)
    assert iv["seeded reaches empty plateau"] == (1.0, 1.0)
    assert iv["half the clicks (reach)"] == (1.0, 1.0)
    assert iv["half the clicks"] == (0.0, 0.0)
    never = bootstrap_click_stats(np.full((6, 11), 0.5), empty, groups=np.repeat(np.arange(3), 2), n_boot=50)
    assert never["seeded reaches empty plateau"] == (11.0, 11.0) and never["half the clicks (reach)"] == (0.0, 0.0)


def test_a_start_is_worth_the_empty_clicks_that_reach_its_dice_read_between_clicks():
    empty = np.array([0.0, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9])
    assert empty_clicks_worth(0.7, empty) == pytest.approx(2.0)
    assert empty_clicks_worth(0.75, empty) == pytest.approx(2.5)   # half way from click 2 to 3
    assert empty_clicks_worth(0.3, empty) == pytest.approx(0.5)
    assert empty_clicks_worth(0.0, empty) == 0.0
    assert empty_clicks_worth(1e-13, empty) == 0.0                 # within the tolerance of click 0
    assert empty_clicks_worth(0.95, empty) is None                  # beyond the last click
    # Half the clicks: the seeded 3rd click must be worth the empty 6th.
    assert empty_clicks_worth(0.9, empty) == pytest.approx(6.0)


def test_a_dip_in_the_empty_curve_counts_the_first_crossing():
    empty = np.array([0.0, 0.5, 0.8, 0.7, 0.9])
    assert empty_clicks_worth(0.75, empty) == pytest.approx(1 + 0.25 / 0.3)
