"""Clicks for the refiner: click maps in model coordinates, checks, simulated clicks, perturbed seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.errors import PancakesInputError
from pancakes.preprocessing import plan_fit, to_model_input
from pancakes.refine.clicks import CLICK_SIGMA, check_clicks, click_map, next_click, to_model_coords
from pancakes.training.refine.seeds import perturbed_seed

torch.set_num_threads(1)


# ---- click maps ---------------------------------------------------------------
def test_click_map_blob_at_the_click_with_documented_width():
    m = click_map([(30.0, 100.0)], 128)
    assert m.shape == (128, 128) and m.dtype == np.float32
    assert np.unravel_index(np.argmax(m), m.shape) == (30, 100)
    assert m[30, 100] == pytest.approx(1.0)
    # One sigma away the Gaussian is exp(-1/2) of its peak.
    assert m[30, 100 + int(CLICK_SIGMA)] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert m[0, 0] < 1e-6
    assert click_map([], 128).max() == 0


def test_two_clicks_are_max_combined():
    m = click_map([(20.0, 20.0), (21.0, 20.0)], 64)
    assert m.max() == pytest.approx(1.0)


@pytest.mark.parametrize("shape, spacing", [((300, 200), (1.0, 1.0)), ((40, 90), (1.0, 1.0)),
                                            ((128, 128), (1.0, 1.0)), ((64, 64), (2.0, 1.0))])
def test_clicks_land_where_the_clicked_pixel_lands_in_the_model_input(shape, spacing):
    # A bright 5x5 patch around the click: after the same resize the image gets, the
    # patch's centre of mass and the click's blob must coincide.
    fit = plan_fit(shape, 128, spacing)
    r, c = shape[0] * 0.3, shape[1] * 0.7
    ri, ci = int(round(r)), int(round(c))
    img = np.zeros(shape, np.float32)
    img[ri - 2:ri + 3, ci - 2:ci + 3] = 1.0
    x = to_model_input(torch.from_numpy(img)[None], fit)[0, 0].numpy()
    rows, cols = np.indices(x.shape)
    com = (float((x * rows).sum() / x.sum()), float((x * cols).sum() / x.sum()))
    (mr, mc), = to_model_coords([(float(ri), float(ci))], fit)
    assert abs(mr - com[0]) < 0.35 and abs(mc - com[1]) < 0.35
    blob = click_map([(mr, mc)], 128)
    assert np.abs(np.array(np.unravel_index(np.argmax(blob), blob.shape)) - np.array(com)).max() <= 1.0


def test_check_clicks_accepts_empty_and_rejects_outside_or_malformed():
    assert check_clicks(None, (10, 20), "positive") == []
    assert check_clicks([], (10, 20), "positive") == []
    assert check_clicks([(0, 0), (9, 19)], (10, 20), "positive") == [(0.0, 0.0), (9.0, 19.0)]
    with pytest.raises(PancakesInputError, match=r"negative click 1 at \(row 10, col 3\) is outside the 10x20 image"):
        check_clicks([(1, 1), (10, 3)], (10, 20), "negative")
    with pytest.raises(PancakesInputError, match="positive click 0.*outside"):
        check_clicks([(-1, 3)], (10, 20), "positive")
    with pytest.raises(PancakesInputError, match=r"expected \(row, col\)"):
        check_clicks([(1, 2, 3)], (10, 20), "positive")
    with pytest.raises(PancakesInputError, match="not finite"):
        check_clicks([(np.nan, 2)], (10, 20), "positive")


# ---- click simulation -----------------------------------------------------------
def test_next_click_goes_to_the_centre_of_the_largest_error():
    target = np.zeros((40, 40), bool)
    target[5:35, 5:35] = True
    pred = target.copy()
    pred[10:21, 10:31] = False  # missed block (11 x 21): positive click at its centre
    pred[36:39, 0:3] = True     # small false positive
    r, c, positive = next_click(pred, target)
    assert positive and (r, c) == (15, 20)
    pred2 = target.copy()
    pred2[0:40, 36:40] = True   # large false positive strip
    assert next_click(pred2, target)[2] is False
    assert next_click(target, target) is None


def test_random_clicks_stay_in_the_error():
    rng = np.random.default_rng(0)
    target = np.zeros((32, 32), bool)
    target[8:24, 8:24] = True
    pred = np.zeros_like(target)
    for _ in range(20):
        r, c, positive = next_click(pred, target, rng, p_random=1.0)
        assert target[r, c] and positive


def test_perturbed_seeds_are_masks_and_mostly_imperfect():
    rng = np.random.default_rng(0)
    labelmap = np.zeros((64, 64), np.int64)
    labelmap[10:40, 10:40] = 1
    labelmap[40:60, 10:40] = 2
    target = labelmap == 1
    seeds = [perturbed_seed(target, labelmap, rng) for _ in range(40)]
    assert all(s.shape == target.shape and s.dtype == bool for s in seeds)
    assert sum(np.array_equal(s, target) for s in seeds) < 10
    assert sum(not s.any() for s in seeds) >= 1  # empty seeds occur


# ---- TorchScript contract -------------------------------------------------------------


@pytest.mark.parametrize("clicks, problem", [(5, "expected a list of"), ("ab", "expected a list of"),
                                             ((3, 4), r"got a single pair \(3, 4\).*\[\(3, 4\)\]"),
                                             (np.array([3.0, 4.0]), r"got a single pair \(3.0, 4.0\)")])
def test_clicks_that_are_not_a_list_of_pairs_say_so(clicks, problem):
    # An int used to raise "'int' object is not iterable"; a bare pair read as two clicks "3" and "4".
    with pytest.raises(PancakesInputError, match="positive clicks: " + problem):
        check_clicks(clicks, (10, 20), "positive")
