"""Training-free anchors for click refinement: a random walker seeded by the clicks.

Why: annotators today grow regions from seeds (Slicer's "Grow from seeds"). In Python
``skimage.segmentation.random_walker`` with the clicks as seeds and the image border as
background is the standard stand-in, so the refiner's click curves are read beside it
(issue 21). The clicks come from the same simulator as the refiner's sessions
(``refine.clicks.next_click``: the centre of the largest error component), so both see
the same kind of user.

Example::

    curves = random_walker_curves(images, targets, n_clicks=20)   # float [N, 21]
"""
from __future__ import annotations

import warnings
from typing import List, Tuple

import numpy as np
from skimage.segmentation import random_walker

from ..refine.clicks import next_click
from .metrics import dice

# Label values of the random walker's markers.
_OBJECT, _BACKGROUND = 1, 2


def click_markers(shape: Tuple[int, int], positive: List[Tuple[int, int]],
                  negative: List[Tuple[int, int]], radius: int = 1) -> np.ndarray:
    """Marker image for ``random_walker``: int [H, W], 0 unknown, 1 object, 2 background.

    The image border is background (the usual assumption of a seeded grower: the user
    framed the structure), except where a positive click's disc touches it. Each click
    marks a disc of ``radius`` pixels, about the size of a cursor's footprint at 128².
    """
    markers = np.zeros(shape, dtype=np.int32)
    markers[0, :] = markers[-1, :] = markers[:, 0] = markers[:, -1] = _BACKGROUND
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    for clicks, value in ((negative, _BACKGROUND), (positive, _OBJECT)):
        for r, c in clicks:
            markers[(rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2] = value
    return markers


def random_walker_mask(image: np.ndarray, positive: List[Tuple[int, int]],
                       negative: List[Tuple[int, int]], beta: float = 130.0) -> np.ndarray:
    """Object mask bool [H, W] from the clicks so far; empty without a positive click."""
    if not positive:
        return np.zeros(image.shape, dtype=bool)
    markers = click_markers(image.shape, positive, negative)
    with warnings.catch_warnings():
        # "bf" is a direct sparse solve: at 128² it takes tens of milliseconds, while the
        # conjugate gradient ("cg_j") stalls for seconds on flat images (CT air, black
        # background), whose weights span many orders of magnitude. Edges can still push
        # probabilities a little past [0, 1]; only their argmax is used.
        warnings.filterwarnings("ignore", message="The probability range is outside")
        labels = random_walker(np.asarray(image, np.float64), markers, beta=beta, mode="bf")
    return labels == _OBJECT


def random_walker_curves(images: np.ndarray, targets: np.ndarray, n_clicks: int = 10,
                         beta: float = 130.0) -> np.ndarray:
    """Dice after 0..n_clicks simulated clicks from an empty mask.

    images float [N, H, W]; targets bool [N, H, W] -> float64 [N, n_clicks + 1].
    Column 0 is the empty start (Dice 0 unless the target is empty). A session whose
    mask is already perfect gets no further click and keeps its mask.
    """
    curves = np.zeros((images.shape[0], n_clicks + 1))
    for i, (image, target) in enumerate(zip(images, np.asarray(targets, bool))):
        mask = np.zeros(target.shape, dtype=bool)
        positive: List[Tuple[int, int]] = []
        negative: List[Tuple[int, int]] = []
        row = [float(dice(mask[None], target[None])[0])]
        for _ in range(n_clicks):
            click = next_click(mask, target)
            if click is not None:
                (positive if click[2] else negative).append((click[0], click[1]))
                mask = random_walker_mask(image, positive, negative, beta)
            row.append(float(dice(mask[None], target[None])[0]))
        curves[i] = row
    return curves
