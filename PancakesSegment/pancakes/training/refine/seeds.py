"""Imperfect starting masks the refiner learns to correct: perturbed truth and real Pancakes labels.

A Pancakes label is usually close to the wanted structure but wrong in places: too
big or small, coarse at the border, shifted, missing a part, leaking into a
neighbour, or the neighbour's label altogether. ``perturbed_seed`` draws such a
mask from the target (and the other labels of its label map).

Perturbed truth alone is too kind: real Pancakes labels (``best_label_seeds``) are
often far worse (best-label Dice about 0.3 on the dev sets) with large regions of
neighbouring tissue, so training mixes in those too (pancakes.training.refine.data.PancakesSeedPool).

Example::

    seed = perturbed_seed(labelmap == 3, labelmap, np.random.default_rng(0))  # bool [H, W]
    seeds, dices = best_label_seeds(model.segment(images, 8, 20), targets, K=20)
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ...evaluation.metrics import per_image_scores
from ...refine.seed_core import SEED_CORE, label_core

P_EMPTY = 0.1
P_OTHER_LABEL = 0.1
P_EXACT = 0.05


def _disc(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def _morph(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    radius = int(rng.integers(1, 7))
    op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
    return op(mask, _disc(radius))


def _shift(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dr, dc = rng.integers(-10, 11, 2)
    return ndimage.shift(mask.astype(np.uint8), (int(dr), int(dc)), order=0, cval=0).astype(bool)


def _coarse(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Blurred and re-thresholded: rounded, lower-resolution borders, like a model's.
    soft = ndimage.gaussian_filter(mask.astype(np.float32), rng.uniform(1.5, 5.0))
    return soft > rng.uniform(0.3, 0.7)


def _blob(shape, centre, rng: np.random.Generator) -> np.ndarray:
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    a, b = rng.uniform(4, 24, 2)
    return ((rr - centre[0]) / a) ** 2 + ((cc - centre[1]) / b) ** 2 <= 1.0


def _drop(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    inside = np.flatnonzero(mask)
    if inside.size == 0:
        return mask
    centre = divmod(int(inside[rng.integers(inside.size)]), mask.shape[1])
    return mask & ~_blob(mask.shape, centre, rng)


def _add(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A blob centred on the border leaks into the surroundings.
    border = np.flatnonzero(mask & ~ndimage.binary_erosion(mask))
    pool = border if border.size else np.arange(mask.size)
    centre = divmod(int(pool[rng.integers(pool.size)]), mask.shape[1])
    return mask | _blob(mask.shape, centre, rng)


OPS: List[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = [_morph, _shift, _coarse, _drop, _add]


def _other_label(target: np.ndarray, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A neighbouring label's mask (touching the target when one does), maybe with part of the target."""
    ring = ndimage.binary_dilation(target, _disc(3)) & ~target
    near = np.unique(labelmap[ring])
    values = [int(v) for v in near if v > 0 and not np.array_equal(labelmap == v, target)]
    if not values:
        return _add(_shift(target, rng), rng)
    other = labelmap == values[rng.integers(len(values))]
    return other | _drop(target, rng) if rng.random() < 0.5 else other


def perturbed_seed(target: np.ndarray, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool [H, W] target, int [H, W] label map -> bool [H, W] imperfect seed.

    Empty with probability P_EMPTY, another label's mask with P_OTHER_LABEL, the exact
    target with P_EXACT; otherwise 1 to 3 of: erosion/dilation, shift, coarse border,
    dropped part, added leak.
    """
    target = np.asarray(target, bool)
    u = rng.random()
    if u < P_EMPTY:
        return np.zeros_like(target)
    if u < P_EMPTY + P_OTHER_LABEL:
        return _other_label(target, labelmap, rng)
    if u < P_EMPTY + P_OTHER_LABEL + P_EXACT:
        return target.copy()
    seed = target
    for i in rng.choice(len(OPS), size=int(rng.integers(1, 4)), replace=False):
        seed = OPS[int(i)](seed, rng)
    return np.asarray(seed, bool)


def best_label_seeds(label_maps: np.ndarray, targets: np.ndarray, K: Optional[int] = None,
                     with_index: bool = False):
    """The Pancakes label each image's user would pick: the (m, k) of highest Dice.

    label_maps int [N, M, H, W] of labels 1..K (Pancakes.segment); targets bool [N, H, W];
    K as in pancakes.evaluation.metrics.per_image_scores. Returns seeds bool [N, H, W] (label k + 1
    of protocol m) and their Dice float64 [N], and with ``with_index`` the picked (m, k) per image.
    Ties go to the first (m, k). Training and benchmarks/bench_refine.py both pick seeds with it.
    """
    label_maps = np.asarray(label_maps)
    targets = np.asarray(targets, bool)
    scores = per_image_scores(label_maps, targets, K=K)  # [N, M, K]
    seeds = np.empty(targets.shape, bool)
    best = np.empty(len(targets))
    picked = []
    for i in range(len(targets)):
        m, k = (int(v) for v in np.unravel_index(int(np.argmax(scores[i])), scores[i].shape))
        seeds[i] = label_maps[i, m] == k + 1
        best[i] = scores[i, m, k]
        picked.append((m, k))
    return (seeds, best, picked) if with_index else (seeds, best)


def best_label_cores(probabilities: Sequence[np.ndarray], targets: np.ndarray, K: Optional[int] = None,
                     threshold: float = SEED_CORE, with_prior: bool = False):
    """The best label (as best_label_seeds) and its core (pancakes.refine.seed_core), from one decode.

    probabilities: per image float [M, K, H, W] (Pancakes.probabilities); targets bool [N, H, W].
    Returns the labels' masks bool [N, H, W], their Dice float64 [N] and their cores bool [N, H, W]: the
    picked label's pixels of probability >= ``threshold``, the seed the panel gives a kept label. The
    labels are the probabilities' argmax, which is what Pancakes.decode gives (the same on every dev image).
    ``with_prior`` adds the picked protocol's (labels int16 [N, H, W] of 1..K, confidence float32 [N, H, W]),
    what pancakes.refine.label_prior reads.
    """
    maps = np.stack([p.argmax(1) + 1 for p in probabilities])
    masks, dices, picked = best_label_seeds(maps, targets, K=K, with_index=True)
    cores = np.stack([label_core(p[m, k], threshold) for p, (m, k) in zip(probabilities, picked)])
    if not with_prior:
        return masks, dices, cores
    labels = np.stack([maps[i, m] for i, (m, _) in enumerate(picked)]).astype(np.int16)
    confidence = np.stack([p[m].max(0) for p, (m, _) in zip(probabilities, picked)]).astype(np.float32)
    return masks, dices, cores, (labels, confidence)
