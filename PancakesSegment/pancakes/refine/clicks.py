"""Clicks and seeds as the refiner's input maps, and simulated clicks for training and benchmarks.

A click is a (row, col) position in pixel coordinates of the image it was made on
(floats allowed; pixel centres are integers). The network sees two maps, one for
positive and one for negative clicks, at the model's input size: each click is a
Gaussian blob of standard deviation ``CLICK_SIGMA`` model pixels with peak 1, clicks
of one kind combined by their maximum. Blobs are drawn in model coordinates, so a
click covers the same fraction of the model input whatever the image size.

Simulated clicks follow the usual protocol of interactive segmentation benchmarks
(and ScribblePrompt's training): click the centre of the largest error region, the
pixel of the largest false-negative (-> positive click) or false-positive (->
negative click) component farthest from that component's border.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..errors import PancakesInputError
from ..preprocessing import Fit

# Blob standard deviation in model pixels (128 x 128 input). The blob falls to
# 1/e^2 of its peak at 2 sigma = 4 px, about 3 % of the input's side.
CLICK_SIGMA = 2.0
Click = Tuple[float, float]


def check_clicks(clicks: Optional[Sequence[Sequence[float]]], shape: Tuple[int, int],
                 kind: str) -> List[Click]:
    """Validate clicks against an image of ``shape`` -> list of (row, col) floats.

    None and [] are fine (no clicks). A click must be two finite numbers inside the
    image: -0.5 <= row < H - 0.5 (the pixel's area), likewise for col.
    """
    if clicks is None:
        return []
    out = []
    try:  # a string is iterable, but its characters are no clicks
        arr = None if isinstance(clicks, (str, bytes)) else list(clicks)
    except TypeError:
        arr = None
    if arr is None:
        raise PancakesInputError(f"{kind} clicks: expected a list of (row, col) pairs, got {clicks!r}")
    if len(arr) == 2 and all(np.ndim(v) == 0 and not isinstance(v, (str, bytes)) for v in arr):
        # A bare pair is one click missing its list; reading it as two clicks would fail on "3".
        pair = "({}, {})".format(*arr)
        raise PancakesInputError(f"{kind} clicks: got a single pair {pair}; pass a list of (row, col) pairs, "
                                 f"e.g. [{pair}]")
    for i, c in enumerate(arr):
        try:
            r, q = (float(v) for v in c)
        except (TypeError, ValueError):
            raise PancakesInputError(f"{kind} click {i}: expected (row, col), got {c!r}") from None
        if not (np.isfinite(r) and np.isfinite(q)):
            raise PancakesInputError(f"{kind} click {i}: ({r}, {q}) is not finite")
        H, W = shape
        if not (-0.5 <= r < H - 0.5 and -0.5 <= q < W - 0.5):
            raise PancakesInputError(
                f"{kind} click {i} at (row {r:g}, col {q:g}) is outside the {H}x{W} image")
        out.append((r, q))
    return out


def to_model_coords(clicks: Sequence[Click], fit: Fit) -> List[Click]:
    """Image pixel coordinates -> model input coordinates under ``fit``.

    Matches the bilinear, align_corners=False resize of preprocessing.to_model_input:
    pixel centres map as (r + 0.5) * h / H - 0.5, then shift by the padding offset.
    """
    (H, W), (h, w), (t, l) = fit.shape, fit.inner, fit.offset
    return [((r + 0.5) * h / H - 0.5 + t, (c + 0.5) * w / W - 0.5 + l) for r, c in clicks]


def click_map(clicks: Sequence[Click], size: int, sigma: float = CLICK_SIGMA) -> np.ndarray:
    """Gaussian blobs at model coordinates ``clicks`` -> float32 [size, size], max-combined."""
    out = np.zeros((size, size), np.float32)
    if not clicks:
        return out
    grid = np.arange(size, dtype=np.float32)
    for r, c in clicks:
        # Separable: exp(-(dr^2 + dc^2) / 2s^2) = exp(-dr^2/2s^2) * exp(-dc^2/2s^2).
        gr = np.exp(-((grid - r) ** 2) / (2 * sigma ** 2))
        gc = np.exp(-((grid - c) ** 2) / (2 * sigma ** 2))
        np.maximum(out, np.outer(gr, gc), out=out)
    return out


def click_maps(positive: Sequence[Click], negative: Sequence[Click], size: int,
               sigma: float = CLICK_SIGMA) -> np.ndarray:
    """(positive, negative) model-coordinate clicks -> float32 [2, size, size]."""
    return np.stack([click_map(positive, size, sigma), click_map(negative, size, sigma)])


def batch_click_maps(positive: Sequence[Sequence[Click]], negative: Sequence[Sequence[Click]], size: int,
                     device=None, sigma: float = CLICK_SIGMA):
    """Per-sample click lists -> torch float32 [N, 2, size, size] on ``device``.

    The same maps as ``click_maps`` for each sample, built in one go with torch so that a
    training batch's maps are made on the GPU instead of per sample in numpy.
    """
    import torch

    n = len(positive)
    most = max([len(p) for p in positive] + [len(q) for q in negative] + [1])
    coords = np.full((n, 2, most, 2), np.nan, np.float32)  # NaN: no click in that slot
    for i, (p, q) in enumerate(zip(positive, negative)):
        if len(p):
            coords[i, 0, :len(p)] = p
        if len(q):
            coords[i, 1, :len(q)] = q
    c = torch.from_numpy(coords).to(device)
    grid = torch.arange(size, dtype=torch.float32, device=device)
    gr = torch.exp(-((grid - c[..., 0:1]) ** 2) / (2 * sigma ** 2))  # [N, 2, most, size]
    gc = torch.exp(-((grid - c[..., 1:2]) ** 2) / (2 * sigma ** 2))
    blobs = torch.nan_to_num(gr[..., :, None] * gc[..., None, :], nan=0.0)  # [N, 2, most, size, size]
    return blobs.amax(2)


def _centre_of(component: np.ndarray) -> Tuple[int, int]:
    """The pixel of a binary region farthest from its border (image edges count as border)."""
    padded = np.pad(component, 1)
    dist = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    # Elongated regions have a ridge of equally deep pixels: take its middle.
    ridge = np.argwhere(dist >= dist.max() - 1e-6)
    r, c = ridge[int(np.argmin(((ridge - ridge.mean(0)) ** 2).sum(1)))]
    return int(r), int(c)


def next_click(pred: np.ndarray, target: np.ndarray, rng: Optional[np.random.Generator] = None,
               p_random: float = 0.0) -> Optional[Tuple[int, int, bool]]:
    """Where a user corrects ``pred`` towards ``target`` next -> (row, col, positive) or None.

    pred, target: bool [H, W]. Deterministic (no rng, p_random=0): the centre of the
    largest error component. With probability ``p_random`` a random pixel of the
    error instead (training: users do not always click centres). None when pred
    equals target.
    """
    pred = np.asarray(pred, bool)
    target = np.asarray(target, bool)
    fn = target & ~pred
    fp = pred & ~target
    if not (fn.any() or fp.any()):
        return None
    if rng is not None and p_random > 0 and rng.random() < p_random:
        err = np.flatnonzero(fn | fp)
        idx = int(err[rng.integers(err.size)])
        r, c = divmod(idx, pred.shape[1])
        return r, c, bool(fn.flat[idx])
    best = None
    for region, positive in ((fn, True), (fp, False)):
        if not region.any():
            continue
        labels, n = ndimage.label(region)
        sizes = np.bincount(labels.ravel())[1:]
        k = int(np.argmax(sizes)) + 1
        if best is None or sizes[k - 1] > best[0]:
            best = (int(sizes[k - 1]), labels == k, positive)
    _, component, positive = best
    r, c = _centre_of(component)
    return r, c, positive


def seed_probability(seeds: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """The previous-prediction channel before the first step: bool seeds [..., S, S] -> float32.

    Seed pixels get probability ``prior``, the others 1 - prior. A prior below 1 tells the
    network that the seed is another model's guess, less sure than its own later output:
    Pancakes seeds carry several wrong components, and a prior of 1 made them look certain.
    """
    if not 0.5 <= prior <= 1.0:
        raise ValueError(f"seed prior {prior!r}: expected a probability in [0.5, 1]")
    s = np.asarray(seeds, bool)
    return np.where(s, np.float32(prior), np.float32(1.0 - prior))
