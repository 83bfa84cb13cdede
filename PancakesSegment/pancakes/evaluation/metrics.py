"""Set metrics of the Pancakes paper: Set Dice (eq. 7), Set IoU and Set surface distance (app. C.3).

A set metric asks whether *one* label (m, k) matches the available ground truth in
*every* image of a set: per-image scores are averaged over the set first and the best
(m, k) is taken afterwards, so a labeling that matches each image with a different label
scores lower than one that uses the same label throughout.

Conventions (shared with `pancakes.protocols`): label maps hold values 1..K, 0 means
"outside" and is never scored; m and k are 0-based indices and label k has value k + 1.

Example::

    score, m, k = set_dice(label_maps, target)   # label_maps [S, M, H, W], target [S, H, W]
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

_METRICS = ("dice", "iou")


def dice(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dice of binary masks; empty vs empty counts as a perfect 1.

    pred: bool [..., H, W]; target: bool [H, W] (or anything broadcastable to pred).
    Returns float64 [...].
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    inter = np.logical_and(pred, target).sum(axis=(-2, -1))
    total = pred.sum(axis=(-2, -1)) + np.broadcast_to(target, pred.shape).sum(axis=(-2, -1))
    return _ratio(2.0 * inter, total)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # den == 0 only when both masks are empty, which is a correct prediction of absence.
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.maximum(den, 1.0), 1.0)


def _counts(
    label_maps: np.ndarray, target: np.ndarray, K: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (s, m, label value) pixel counts by one bincount, instead of S*M*K mask passes.

    label_maps: int [S, M, H, W]; target: bool [S, H, W]; K: number of label columns
    (default: the largest value present).
    Returns (inter [S, M, K], pred_size [S, M, K], target_size [S, 1, 1]);
    column j belongs to label value j + 1.
    """
    label_maps = np.asarray(label_maps)
    target = np.asarray(target, dtype=bool)
    if label_maps.ndim != 4 or target.ndim != 3:
        raise ValueError(f"need label_maps [S, M, H, W] and target [S, H, W], got "
                         f"{label_maps.shape} and {target.shape}")
    S, M, H, W = label_maps.shape
    if target.shape != (S, H, W):
        raise ValueError(f"target shape {target.shape} does not match "
                         f"label maps {label_maps.shape}")
    if label_maps.size and label_maps.min() < 0:
        raise ValueError("label values must be >= 0")
    largest = int(label_maps.max()) if label_maps.size else 0
    if K is None:
        K = max(largest, 1)
    elif largest > K:
        raise ValueError(f"label value {largest} exceeds K={K}")
    n_values = K + 1
    # A flat index (s, m, value) lets a single bincount count every label at once.
    offsets = (np.arange(S * M, dtype=np.int64) * n_values).reshape(S, M, 1, 1)
    flat = (label_maps.astype(np.int64) + offsets).ravel()
    size = np.bincount(flat, minlength=S * M * n_values).reshape(S, M, n_values)
    in_target = np.broadcast_to(target[:, None], label_maps.shape).ravel()
    inter = np.bincount(flat[in_target], minlength=S * M * n_values).reshape(S, M, n_values)
    target_size = target.sum(axis=(1, 2)).reshape(S, 1, 1)
    return inter[..., 1:], size[..., 1:], target_size


def per_image_scores(
    label_maps: np.ndarray, target: np.ndarray, metric: str = "dice", K: Optional[int] = None
) -> np.ndarray:
    """Dice or IoU of (label_maps[s, m] == k + 1) against target[s], for every s, m, k.

    label_maps: int [S, M, H, W] with values 0..K; target: bool [S, H, W];
    K: number of label columns (default: the largest value present).
    Returns float64 [S, M, K]. A label absent from image s scores 0 there, or 1 when
    target[s] is empty too (it correctly predicts absence).
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    inter, size, target_size = _counts(label_maps, target, K)
    total = size + target_size
    if metric == "dice":
        return _ratio(2.0 * inter, total)
    return _ratio(inter, total - inter)


def set_scores(
    label_maps: np.ndarray, target: np.ndarray, metric: str = "dice", K: Optional[int] = None
) -> np.ndarray:
    """E_s of Dice (or IoU) for every (m, k): the table eq. 7 takes its max over.

    label_maps: int [S, M, H, W] with values 0..K (0 is never scored); target: bool [S, H, W];
    K: number of label columns (default: the largest value present).
    Returns float64 [M, K]; column k belongs to label value k + 1.
    """
    return per_image_scores(label_maps, target, metric, K).mean(axis=0)


def _best(scores: np.ndarray) -> Tuple[float, int, int]:
    m, k = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[m, k]), int(m), int(k)


def set_dice(
    label_maps: np.ndarray, target: np.ndarray, K: Optional[int] = None
) -> Tuple[float, int, int]:
    """Set Dice (eq. 7): max over (m, k) of E_s Dice(label_maps[s, m] == k + 1, target[s]).

    label_maps: int [S, M, H, W]; target: bool [S, H, W]; K as in `set_scores` (it only
    matters for empty targets, where a label absent everywhere scores 1).
    Returns (score, m, k), m and k 0-based; ties go to the smallest (m, k).
    """
    return _best(set_scores(label_maps, target, "dice", K))


def set_iou(
    label_maps: np.ndarray, target: np.ndarray, K: Optional[int] = None
) -> Tuple[float, int, int]:
    """Set IoU (app. C.3): as `set_dice` with IoU in place of Dice. Returns (score, m, k)."""
    return _best(set_scores(label_maps, target, "iou", K))


def _surface(mask: np.ndarray) -> np.ndarray:
    # Pixels of the mask with a 4-neighbour outside it. border_value=0 makes pixels on the
    # image edge surface too: the object visibly ends there.
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distance(
    pred: np.ndarray, target: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)
) -> float:
    """Average symmetric surface distance (ASSD) between two binary masks, in spacing units.

    pred, target: bool [H, W]; spacing: (row, column) pixel size.
    Both empty gives 0; exactly one empty gives the image diagonal, a finite worst case,
    so a set average stays finite and still ranks a missing structure as bad.
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    surf_p, surf_t = _surface(pred), _surface(target)
    n_p, n_t = int(surf_p.sum()), int(surf_t.sum())
    if n_p == 0 and n_t == 0:
        return 0.0
    if n_p == 0 or n_t == 0:
        return float(np.hypot(*(np.asarray(pred.shape) * np.asarray(spacing, dtype=float))))
    # EDT of the complement of one surface gives, at every pixel, the distance to it.
    to_t = ndimage.distance_transform_edt(~surf_t, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~surf_p, sampling=spacing)
    return float((to_t[surf_p].sum() + to_p[surf_t].sum()) / (n_p + n_t))


def set_surface_distance(
    label_maps: np.ndarray,
    target: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0),
    candidates: int = 5,
) -> Tuple[float, int, int]:
    """Set surface distance (app. C.3): min over (m, k) of E_s ASSD(maps[s, m] == k + 1, target[s]).

    label_maps: int [S, M, H, W]; target: bool [S, H, W]; spacing: (row, column) pixel size.
    Distance transforms for all M*K labels cost ~M*K*S of them per set, so only the
    `candidates` best (m, k) by set Dice are tried: a label far from the target in overlap
    is practically never the closest in surface distance. candidates <= 0 tries all pairs.
    Returns (distance, m, k), m and k 0-based.
    """
    label_maps = np.asarray(label_maps)
    target = np.asarray(target, dtype=bool)
    scores = set_scores(label_maps, target, "dice")
    order = np.argsort(-scores, axis=None, kind="stable")
    if candidates > 0:
        order = order[:candidates]
    best = (np.inf, 0, 0)
    for flat in order:
        m, k = (int(i) for i in np.unravel_index(int(flat), scores.shape))
        dist = float(np.mean([surface_distance(label_maps[s, m] == k + 1, target[s], spacing)
                              for s in range(label_maps.shape[0])]))
        if dist < best[0]:
            best = (dist, m, k)
    return best


def label_usage(label_maps: np.ndarray) -> Dict[str, float]:
    """How many labels each protocol really uses, to spot a collapse at a glance.

    label_maps: int [S, M, H, W] with values >= 0.
    Returns {'labels_per_protocol': mean over (s, m) of the number of distinct values in
    the map, 'largest_share': mean over (s, m) of the most frequent value's pixel share}.
    A collapsed model (one label everywhere) reads 1.0 and 1.0.
    """
    label_maps = np.asarray(label_maps)
    S, M, H, W = label_maps.shape
    n_values = int(label_maps.max()) + 1
    offsets = (np.arange(S * M, dtype=np.int64) * n_values).reshape(S, M, 1, 1)
    counts = np.bincount((label_maps.astype(np.int64) + offsets).ravel(),
                         minlength=S * M * n_values).reshape(S * M, n_values)
    return {
        "labels_per_protocol": float((counts > 0).sum(axis=1).mean()),
        "largest_share": float((counts.max(axis=1) / (H * W)).mean()),
    }
