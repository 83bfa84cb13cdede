"""The same set drawn again is one piece of evidence: keys, distinct counts, and intervals by distinct set."""
import numpy as np
import pytest

from pancakes.training.evaluate import evaluate_methods
from pancakes.training.intervals import bootstrap_intervals, few_distinct
from pancakes.training.kind_report import format_kind_report
from pancakes.training.taskset import TaskSet


def _set(seed: int, label: int = 1, dataset: str = "small:lung") -> TaskSet:
    rng = np.random.default_rng(seed)
    labs = (rng.random((2, 12, 12)) > 0.5).astype(np.int32) + 1
    return TaskSet(rng.random((2, 12, 12)).astype(np.float32), labs, label, dataset, "p")


def test_a_sets_key_is_its_images_and_its_target():
    a = _set(0)
    assert a.key() == _set(0).key()  # drawn again: the same question
    assert a.key() != _set(1).key()  # other images
    assert a.key() != _set(0, label=2).key()  # same images, another target
    renamed = _set(0)
    renamed.slices = ("elsewhere",)
    assert renamed.key() == a.key()  # names do not make a set new


def test_rows_count_the_distinct_sets_they_rest_on():
    sets = {1: [_set(0), _set(0), _set(0), _set(1), _set(2, dataset="small:nuclei")]}
    rows = evaluate_methods(sets, {"one label": lambda im, M, K: np.ones((len(im), M) + im.shape[1:], np.int64)}, 2, 3)
    by_ds = {r["dataset"]: r for r in rows}
    assert by_ds["small:lung"]["n"] == 4 and by_ds["small:lung"]["distinct"] == 2
    assert len(by_ds["small:lung"]["keys"]) == 4 and by_ds["small:nuclei"]["distinct"] == 1
    assert few_distinct(rows, "one label") == [(1, "small:lung", 2, 4), (1, "small:nuclei", 1, 1)]


def _rows(scores, keys):
    return [{"method": "m", "S": 1, "dataset": "a", "scores": list(scores), "keys": keys, "distinct": len(set(keys))}]


def test_repeats_do_not_narrow_the_interval():
    rng = np.random.default_rng(3)
    four = rng.uniform(0, 1, 4)
    alone = bootstrap_intervals(_rows(four, list("abcd")), "m", n_boot=4000)[1]
    # The same four sets, each drawn five times: still four pieces of evidence.
    repeated = bootstrap_intervals(_rows(np.repeat(four, 5), list(np.repeat(list("abcd"), 5))), "m", n_boot=4000)[1]
    as_if_new = bootstrap_intervals(_rows(np.repeat(four, 5), [str(i) for i in range(20)]), "m", n_boot=4000)[1]
    width = lambda iv: iv[1] - iv[0]
    assert width(repeated) == pytest.approx(width(alone), rel=0.15)
    assert width(as_if_new) < 0.6 * width(repeated)
    # One distinct set drawn 20 times has no spread to show, and the report says so instead.
    lo, hi = bootstrap_intervals(_rows([0.4] * 20, ["x"] * 20), "m")[1]
    assert lo == hi == pytest.approx(0.4)


def test_the_kind_report_names_sources_with_few_distinct_sets():
    rows = [dict(r, method="pancakes", dataset="small:lung") for r in _rows([0.4] * 20, ["x"] * 20)]
    rows += [dict(r, method="pancakes", dataset="small:nuclei") for r in _rows(np.linspace(0, 1, 8), list("abcdefgh"))]
    for r in rows:
        r.update(set_dice=float(np.mean(r["scores"])), n=len(r["scores"]), labels_per_protocol=3.0, largest_share=0.5)
    text = format_kind_report(rows, [1], ["pancakes"], n_boot=200)
    assert "sets per S: 28; distinct: 9" in text
    assert "lung at S=1, 1 of 20" in text and "nuclei at S=1" not in text


def test_first_occurrences_keep_one_of_each_image_and_target():
    from pancakes.training.distinct import first_occurrences

    rng = np.random.default_rng(5)
    images = rng.random((3, 8, 8)).astype(np.float32)
    targets = rng.random((3, 8, 8)) > 0.5
    # image 0 with its target three times, image 1 with two targets, image 2 once
    ims = images[[0, 1, 0, 1, 2, 0]]
    tgs = np.stack([targets[0], targets[1], targets[0], ~targets[1], targets[2], targets[0]])
    assert first_occurrences(ims, tgs).tolist() == [True, True, False, True, True, False]
