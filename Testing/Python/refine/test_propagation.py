"""Spreading a refined slice to its neighbours (pancakes.refine.propagation): the 3D random walker."""
from __future__ import annotations

import numpy as np
import pytest

from pancakes.refine import propagation
from pancakes.refine.propagation import spread_mask

WINDOW = (0.0, 255.0)


def _ball(shape=(31, 64, 64), centre=(15, 30, 34), radius=11.0, noise=4.0):
    """A bright ball in a dark volume: (volume float [D, H, W], ball bool [D, H, W])."""
    zz, rr, cc = np.indices(shape)
    ball = (zz - centre[0]) ** 2 + (rr - centre[1]) ** 2 + (cc - centre[2]) ** 2 <= radius ** 2
    volume = np.where(ball, 180.0, 60.0) + np.random.default_rng(0).normal(0, noise, shape)
    return volume, ball


def _spread(volume, ball, index=15, limit=30, axis=0, spacing=(1.0, 1.0, 1.0)):
    return _as_volume(spread_mask(volume, axis, index, np.take(ball, index, axis=axis), WINDOW, spacing, limit),
                      np.moveaxis(ball, axis, 0).shape, axis)


def _as_volume(slices, shape, axis=0):
    """spread_mask's {slice: mask} as a bool volume with the slices along ``axis``."""
    out = np.zeros(shape, bool)
    for i, mask in slices.items():
        out[i] = mask
    return np.moveaxis(out, 0, axis)


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_the_label_follows_a_narrowing_structure_and_stops_where_it_ends():
    volume, ball = _ball()
    out = _spread(volume, ball)
    # Copying the clicked slice (a cylinder) would score 0.80 against the ball: the walker follows it narrowing.
    assert _dice(out, ball) > 0.9
    assert not out[:3].any() and not out[28:].any()  # the ball spans slices 4..26
    assert np.array_equal(out[15], ball[15])  # the clicked slice is kept as refined


def test_the_reach_limits_the_slices_it_writes():
    volume, ball = _ball()
    assert sorted(spread_mask(volume, 0, 15, ball[15], WINDOW, (1.0, 1.0, 1.0), 2)) == [13, 14, 15, 16, 17]
    # From the ball's first slice it spreads only one way, and only where the ball is.
    reached = sorted(spread_mask(volume, 0, 4, ball[4], WINDOW, (1.0, 1.0, 1.0), 30))
    assert reached[0] == 4 and reached[-1] <= 27


def test_another_structure_in_the_box_is_not_taken():
    volume, ball = _ball()
    # A second bright ball nearby, apart from the first: the walker may reach it, the label must not.
    zz, rr, cc = np.indices(ball.shape)
    other = (zz - 20) ** 2 + (rr - 30) ** 2 + (cc - 56) ** 2 <= 5 ** 2
    volume = np.where(other, 180.0, volume)
    out = _spread(volume, ball)
    assert not (out & other).any()
    assert _dice(out, ball) > 0.9


def test_any_axis_gives_the_same_label():
    volume, ball = _ball()
    along0 = _spread(volume, ball)
    moved_volume, moved_ball = np.moveaxis(volume, 0, 2), np.moveaxis(ball, 0, 2)
    along2 = _spread(moved_volume, moved_ball, axis=2)
    assert np.array_equal(np.moveaxis(along2, 2, 0), along0)


def test_a_large_block_is_solved_coarser_and_still_follows(monkeypatch):
    volume, ball = _ball()
    fine = _spread(volume, ball)
    monkeypatch.setattr(propagation, "MAX_VOXELS", 20_000)  # the ball's block is ~60,000 voxels: factor 2
    coarse = _spread(volume, ball)
    assert _dice(coarse, ball) > 0.85
    assert not np.array_equal(coarse, fine)  # the coarse path did run


def test_the_coarse_solve_lands_where_the_fine_one_does(monkeypatch):
    # A box whose sides are not a multiple of the factor: the coarse probabilities must come back onto the fine
    # voxels they were the mean of, not stretched over the box (which shifted the label by half a pixel).
    volume, ball = _ball(shape=(31, 90, 90), centre=(15, 60, 62), radius=14.0)
    monkeypatch.setattr(propagation, "MAX_VOXELS", 60_000)
    out = _spread(volume, ball)
    offset = np.argwhere(out).mean(axis=0) - np.argwhere(ball).mean(axis=0)
    assert np.abs(offset).max() < 0.25, offset
    assert _dice(out, ball) > 0.95


def test_slices_are_in_millimetres_and_the_input_is_left_alone():
    volume, ball = _ball()
    before = volume.copy()
    # The same voxels as 3 mm slices: the walker weighs the slice-to-slice edges by their length, and the
    # label still stops with the ball.
    out = _spread(volume, ball, spacing=(3.0, 1.0, 1.0))
    assert np.array_equal(volume, before)
    assert _dice(out, ball) > 0.85 and not out[:3].any() and not out[28:].any()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels_read_as_the_window_low(bad):
    volume, ball = _ball()
    volume[0:2] = bad  # slices outside the ball
    out = _spread(volume, ball)
    assert _dice(out, ball) > 0.9 and not out[:3].any()


def test_propagation_needs_no_scikit_image(monkeypatch):
    # Slicer's own Python may lack scikit-image: the walker is solved with SciPy alone.
    import sys

    from pancakes.refine.refiner import Refiner

    volume, ball = _ball()
    monkeypatch.setitem(sys.modules, "skimage", None)  # any import of it now fails
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    assert _dice(_spread(volume, ball), ball) > 0.9
    refiner = Refiner.load(device="cpu", geodesic=False)  # the geodesic reach is the part that needs it
    out = refiner.refine_volume_slice(volume, 0, 15, ball, positive=[(30, 34)], propagate=True)
    assert out[5:26].any(axis=(1, 2)).all()  # spread well beyond the clicked slice


def test_a_structure_cut_by_the_image_edge_keeps_its_edge_pixels():
    # Where the box meets the image's edge the structure may go on: that face is not background.
    volume, ball = _ball(centre=(15, 3, 34))
    out = _spread(volume, ball)
    assert out[10:21, 0].sum() >= 0.9 * ball[10:21, 0].sum() > 0
    assert _dice(out, ball) > 0.9


def _two_balls_joined():
    """A ball whose middle slices are dim, as a structure whose contrast fades: the walker alone stops there."""
    volume, ball = _ball(shape=(41, 64, 64), centre=(20, 30, 34), radius=16.0)
    volume[18:23][ball[18:23]] = 95.0  # a faint band across the ball's middle
    return volume, ball


def test_settled_slices_seed_the_walker_and_keep_their_label():
    volume, ball = _two_balls_joined()
    alone = _spread(volume, ball, index=12, limit=40)
    both = _as_volume(spread_mask(volume, 0, 12, ball[12], WINDOW, (1.0, 1.0, 1.0), 40, fixed={28: ball[28]}),
                      ball.shape)
    # From slice 12 alone the label stops at the faint band (slices 18-22); settled slice 28 gives it the ball
    # beyond the band too (0.55 -> 0.87 of Dice).
    assert not alone[18:].any()
    assert _dice(both[23:], ball[23:]) > 0.95
    assert _dice(both, ball) > _dice(alone, ball) + 0.2
    assert np.array_equal(both[28], ball[28])


def test_a_settled_empty_slice_stops_the_spreading():
    volume, ball = _ball()
    empty = np.zeros_like(ball[0])
    reached = sorted(spread_mask(volume, 0, 15, ball[15], WINDOW, (1.0, 1.0, 1.0), 30, fixed={19: empty}))
    assert reached[-1] == 19 and reached[0] <= 5  # the empty settled slice is reached, and nothing past it


def test_settled_slices_are_kept_by_the_refiner_and_checked():
    from pancakes.errors import PancakesInputError
    from pancakes.refine.refiner import Refiner

    refiner = Refiner.load(device="cpu")
    volume, ball = _ball()
    seed = np.zeros_like(ball)
    seed[15], seed[20] = ball[15], ball[20] & (np.indices(ball.shape[1:])[1] < 34)  # slice 20: the user's half
    out = refiner.refine_volume_slice(volume, 0, 15, seed, positive=[(30, 34)], propagate=True, fixed_slices=[20])
    assert np.array_equal(out[20], seed[20])
    unfixed = refiner.refine_volume_slice(volume, 0, 15, seed, positive=[(30, 34)], propagate=True)
    assert not np.array_equal(unfixed[20], seed[20])
    for bad, message in (([31], "31 is not a slice index in 0..30"), ([2.0], "2.0 is not"), (7, "expected slice")):
        with pytest.raises(PancakesInputError, match=f"fixed_slices.*{message}"):
            refiner.refine_volume_slice(volume, 0, 15, seed, positive=[(30, 34)], propagate=True, fixed_slices=bad)
