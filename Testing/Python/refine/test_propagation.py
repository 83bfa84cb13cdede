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
    mask = np.take(ball, index, axis=axis)
    first, stop, block = spread_mask(volume, axis, index, mask, WINDOW, spacing, limit)
    out = np.zeros(np.moveaxis(ball, axis, 0).shape, bool)
    out[first:stop] = block
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
    first, stop, block = spread_mask(volume, 0, 15, ball[15], WINDOW, (1.0, 1.0, 1.0), 2)
    assert (first, stop) == (13, 18) and block.shape == (5, 64, 64)
    # Thicker slices than the ball is deep: it still spreads only where the ball is.
    first, stop, _ = spread_mask(volume, 0, 4, ball[4], WINDOW, (1.0, 1.0, 1.0), 30)
    assert first == 4 and stop <= 28


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


def test_without_scikit_image_propagation_says_so_before_refining(monkeypatch):
    from pancakes.errors import PancakesInputError
    from pancakes.refine import refiner as refiner_module

    refiner = refiner_module.Refiner.load(device="cpu")
    volume, ball = _ball()
    monkeypatch.setattr(refiner_module, "skimage_available", lambda: False)
    with pytest.raises(PancakesInputError, match="propagate: .*needs scikit-image"):
        refiner.refine_volume_slice(volume, 0, 15, ball, positive=[(30, 34)], propagate=True)
    # Without propagation the slice is refined as before.
    assert refiner.refine_volume_slice(volume, 0, 15, ball, positive=[(30, 34)]).shape == ball.shape


def test_a_structure_cut_by_the_image_edge_keeps_its_edge_pixels():
    # Where the box meets the image's edge the structure may go on: that face is not background.
    volume, ball = _ball(centre=(15, 3, 34))
    out = _spread(volume, ball)
    assert out[10:21, 0].sum() >= 0.9 * ball[10:21, 0].sum() > 0
    assert _dice(out, ball) > 0.9
