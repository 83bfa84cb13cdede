"""What the Refiner checks of its inputs, and how it reads them: one line naming the input and the problem.

Usage::

    vol, axis, index = check_volume_slice(volume, axis, index)    # PancakesInputError when it cannot be sliced
    seed = mask_like(seed_mask, image.shape, "seed_mask")         # bool [H, W]; None -> empty
    prob = previous_probability(previous, image.shape)            # logits, probabilities or a mask -> [0, 1]
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ..errors import PancakesInputError
from ..preprocessing import finite_float
from .label_prior import check_label_prior


def check_voxel_type(vol: np.ndarray) -> None:
    if not (np.issubdtype(vol.dtype, np.number) or vol.dtype == bool):
        raise PancakesInputError(f"volume_array: voxel type {vol.dtype} is not numeric")


def check_volume_slice(volume_array: np.ndarray, axis: int, index: int) -> Tuple[np.ndarray, int, int]:
    """A 3D numeric volume and an (axis, index) of one of its slices -> (array, axis, index) as ints."""
    vol = np.asarray(volume_array)
    if vol.ndim != 3:
        raise PancakesInputError(f"volume_array: expected a 3D array, got shape {tuple(vol.shape)}")
    # 1.0 == 1 passes "in (0, 1, 2)" but cannot index; bool is an int but no axis.
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (0, 1, 2):
        raise PancakesInputError(f"axis {axis!r}: use 0, 1 or 2 (array axis of volume_array)")
    axis = int(axis)
    if vol.size == 0:
        raise PancakesInputError(f"volume_array: shape {tuple(vol.shape)} holds no voxels")
    depth = vol.shape[axis]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < depth:
        raise PancakesInputError(f"index {index!r}: slice must be an integer in 0..{depth - 1} along axis {axis}")
    check_voxel_type(vol)
    return vol, axis, int(index)


def check_fixed_slices(fixed_slices, index: int, depth: int) -> List[int]:
    """Slice indices a caller marked as settled -> sorted distinct ints in 0..depth-1 other than the clicked
    ``index`` (listing it is harmless: it is refined anyway), or a PancakesInputError naming the bad one."""
    if fixed_slices is None:
        return []
    try:
        given = list(fixed_slices)
    except TypeError:
        raise PancakesInputError(f"fixed_slices {fixed_slices!r}: expected slice indices") from None
    for i in given:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < depth:
            raise PancakesInputError(f"fixed_slices: {i!r} is not a slice index in 0..{depth - 1}")
    return sorted({int(i) for i in given} - {int(index)})


def check_window(window) -> Tuple[float, float]:
    """(low, high) as two finite floats with low < high, or a PancakesInputError naming the problem."""
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise PancakesInputError(f"window {window!r}: expected (low, high), as Refiner.volume_window gives") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise PancakesInputError(f"window {window!r}: expected finite (low, high) with low < high")
    return lo, hi


def mask_like(mask: Optional[np.ndarray], shape: Tuple[int, ...], name: str) -> np.ndarray:
    """Nonzero -> True, as bool of ``shape``; None -> empty. Wrong shapes name the problem."""
    if mask is None:
        return np.zeros(shape, bool)
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise PancakesInputError(f"{name}: shape {tuple(m.shape)} does not match the image's {tuple(shape)}")
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise PancakesInputError(f"{name}: values of type {m.dtype} are not a mask")
    if np.issubdtype(m.dtype, np.inexact) and not np.isfinite(m).all():
        # NaN != 0 would silently count as inside: a NaN-filled probability map is no mask.
        raise PancakesInputError(f"{name}: contains NaN or infinite values; a mask is 0 (outside) or nonzero (inside)")
    return m != 0


def checked_label_prior(label_prior, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, confidence) checked against the image's shape, before the network runs."""
    if not isinstance(label_prior, (tuple, list)) or len(label_prior) != 2:
        raise PancakesInputError("label_prior: expected (labels, confidence), two arrays of the image's shape")
    return check_label_prior(label_prior[0], label_prior[1], shape)


def previous_probability(previous: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Previous result as probability: masks and values in [0, 1] stay, other floats are logits."""
    p = np.asarray(previous)
    if p.shape != tuple(shape):
        raise PancakesInputError(f"previous: shape {tuple(p.shape)} does not match the image's {tuple(shape)}")
    if not (np.issubdtype(p.dtype, np.number) or p.dtype == bool) or np.iscomplexobj(p):
        raise PancakesInputError(f"previous: values of type {p.dtype} are neither logits nor a mask")
    if not np.issubdtype(p.dtype, np.floating):
        # Integers are masks (0/1, 0/255, label values), never logits: as logits 0 would read p = 0.5.
        return (p != 0).astype(np.float32)
    p = finite_float(p, "previous")
    if p.min() >= 0.0 and p.max() <= 1.0:
        return p
    return (1.0 / (1.0 + np.exp(-np.clip(p, -30, 30)))).astype(np.float32)
