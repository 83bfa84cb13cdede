"""Bootstrap intervals of dev Set Dice: where they sit, how wide, and the paired difference."""
import numpy as np
import pytest

from pancakes.training.intervals import bootstrap_intervals, format_intervals


def _rows(method, scores_by_s):
    """scores_by_s: S -> dataset -> list of per-set scores."""
    return [{"method": method, "S": S, "dataset": ds, "scores": list(v)}
            for S, by_ds in scores_by_s.items() for ds, v in by_ds.items()]


def test_interval_brackets_the_dataset_mean_and_shrinks_with_more_sets():
    rng = np.random.default_rng(0)
    few = {1: {"a": rng.uniform(0.3, 0.9, 8), "b": rng.uniform(0.0, 0.4, 8)}}
    many = {1: {"a": rng.uniform(0.3, 0.9, 200), "b": rng.uniform(0.0, 0.4, 200)}}
    lo, hi = bootstrap_intervals(_rows("m", few), "m")[1]
    mean = np.mean([few[1]["a"].mean(), few[1]["b"].mean()])  # each dataset weighs the same
    assert lo < mean < hi
    lo2, hi2 = bootstrap_intervals(_rows("m", many), "m")[1]
    assert hi2 - lo2 < (hi - lo) / 2


def test_constant_scores_give_a_point_and_the_ratio_of_the_two_S():
    rows = _rows("m", {1: {"a": [0.8] * 5, "b": [0.4] * 5}, 5: {"a": [0.6] * 5, "b": [0.3] * 5}})
    iv = bootstrap_intervals(rows, "m")
    assert iv[1] == pytest.approx((0.6, 0.6)) and iv[5] == pytest.approx((0.45, 0.45))
    assert iv["ratio"] == pytest.approx((0.75, 0.75))


def test_paired_difference_sees_a_small_uniform_gain_that_unpaired_intervals_hide():
    rng = np.random.default_rng(1)
    base = {S: {"a": rng.uniform(0, 1, 10), "b": rng.uniform(0, 1, 10)} for S in (1, 5)}
    better = {S: {ds: v + 0.02 for ds, v in d.items()} for S, d in base.items()}
    rows = _rows("old", base) + _rows("new", better)
    old, new = bootstrap_intervals(rows, "old"), bootstrap_intervals(rows, "new")
    assert new[1][0] < old[1][1]  # unpaired: the intervals overlap
    diff = bootstrap_intervals(rows, "new", minus="old")
    assert diff[1] == pytest.approx((0.02, 0.02)) and diff[5] == pytest.approx((0.02, 0.02))


def test_paired_difference_refuses_different_sets_and_unknown_methods():
    rows = _rows("old", {1: {"a": [0.5, 0.6]}}) + _rows("new", {1: {"a": [0.5, 0.6, 0.7]}})
    with pytest.raises(ValueError, match="same sets"):
        bootstrap_intervals(rows, "new", minus="old")
    with pytest.raises(ValueError, match="no rows"):
        bootstrap_intervals(rows, "missing")


def test_format_lists_each_model_then_the_paired_rows():
    rows = _rows("pancakes", {1: {"a": [0.5, 0.7]}, 5: {"a": [0.4, 0.5]}}) + \
        _rows("pancakes (new.pt)", {1: {"a": [0.6, 0.8]}, 5: {"a": [0.5, 0.6]}})
    text = format_intervals(rows, ["pancakes", "pancakes (new.pt)"], [1, 5], n_boot=200)
    lines = [l for l in text.splitlines() if l.startswith("| pancakes")]
    assert len(lines) == 3 and "(paired)" in lines[2]
    assert "+0.100 to +0.100" in lines[2]
