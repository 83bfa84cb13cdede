"""The random-walker anchor of the click benchmark (issue 21): seeds from clicks, border as background."""
import numpy as np
import pytest

from pancakes.evaluation.click_baselines import click_markers, random_walker_curves, random_walker_mask


def _disc_image(size=48, centre=(24, 20), radius=9, noise=0.05, seed=0):
    rows, cols = np.ogrid[:size, :size]
    target = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2
    rng = np.random.default_rng(seed)
    image = 0.2 + 0.6 * target + rng.normal(0, noise, target.shape)
    return image.astype(np.float32), target


def test_markers_put_the_border_in_the_background_and_clicks_on_top():
    m = click_markers((10, 12), positive=[(5, 5)], negative=[(2, 9)], radius=1)
    assert m.shape == (10, 12)
    assert (m[0] == 2).all() and (m[:, -1] == 2).all()
    assert m[5, 5] == 1 and m[4, 5] == 1 and m[5, 6] == 1
    assert m[2, 9] == 2
    assert m[7, 3] == 0  # unknown elsewhere


def test_a_positive_click_on_the_border_wins_over_the_border_background():
    m = click_markers((10, 10), positive=[(0, 5)], negative=[])
    assert m[0, 5] == 1


def test_one_click_in_a_contrasted_disc_grows_to_the_disc():
    image, target = _disc_image()
    mask = random_walker_mask(image, [(24, 20)], [])
    inter = (mask & target).sum()
    assert 2 * inter / (mask.sum() + target.sum()) > 0.9


def test_no_positive_click_gives_an_empty_mask():
    image, _ = _disc_image()
    assert not random_walker_mask(image, [], [(3, 3)]).any()


def test_curves_start_empty_and_a_clear_object_is_found_at_the_first_click():
    image, target = _disc_image()
    curves = random_walker_curves(image[None], target[None], n_clicks=3)
    assert curves.shape == (1, 4)
    assert curves[0, 0] == 0.0
    assert curves[0, 1] > 0.9
    assert curves[0, 3] >= curves[0, 1] - 0.05


def test_a_target_that_touches_nothing_of_the_image_contrast_needs_more_clicks():
    """Without contrast the walker has only distances to go on: one click gives a partial
    answer and further clicks improve it (the simulator keeps clicking the largest error)."""
    _, target = _disc_image(radius=12)
    flat = np.full(target.shape, 0.5, np.float32) + np.random.default_rng(1).normal(0, 0.01, target.shape)
    curves = random_walker_curves(flat[None].astype(np.float32), target[None], n_clicks=6)
    assert curves[0, 1] < 0.9
    assert curves[0, 6] > curves[0, 1]
