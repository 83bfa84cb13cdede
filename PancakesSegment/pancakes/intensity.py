"""Pixel values before the model: checks (numeric, finite, not constant, big enough) and robust normalisation.

No torch here: the gallery, the thumbnails and the input readers use these too, and they
load inside Slicer before PyTorch is installed. pancakes.preprocessing re-exports them.

Usage::

    grey = to_grey(rgb_or_grey_image, "scan.png")   # float32 [H, W], PancakesInputError naming the image
    grey01 = normalise(grey, "scan.png")             # 0.5-99.5 percentiles -> [0, 1]
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .errors import PancakesInputError

MIN_SIDE = 4
PERCENTILES = (0.5, 99.5)
# Largest magnitude kept as is when float64 pixels are cast to float32 (max ~3.4e38), with
# headroom for the arithmetic that follows.
FLOAT32_SAFE = 1e30


def to_grey(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate one 2D image and return it as float32 [H, W].

    RGB(A) images ([H, W, 3|4]) become grey by luminance; other shapes raise
    PancakesInputError naming ``name``. Non-finite pixels are replaced by the
    smallest finite value (scanners mark "no data" with NaN); an image with no
    finite pixel is an error.
    """
    a = np.asarray(image)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise PancakesInputError(f"{name}: pixel type {a.dtype} is not numeric")
    if np.iscomplexobj(a):  # casting would keep the real part only, with nothing but a warning
        raise PancakesInputError(f"{name}: complex-valued pixels ({a.dtype}) are not supported")
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise PancakesInputError(f"{name}: expected a 2D image, got shape {tuple(a.shape)}")
    if min(a.shape) < MIN_SIDE:
        raise PancakesInputError(f"{name}: image {a.shape[0]}x{a.shape[1]} has a side under {MIN_SIDE} pixels")
    return finite_float(a, name)


def finite_float(a: np.ndarray, name: str) -> np.ndarray:
    """float32 copy of ``a`` with non-finite values set to the finite minimum."""
    a = np.asarray(a)
    finite = np.isfinite(a)
    if not finite.any():
        raise PancakesInputError(f"{name}: contains only NaN or infinite values")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:
        peak = float(np.abs(a[finite]).max())
        if peak > FLOAT32_SAFE:
            # Finite float64 values past float32's range would turn into inf when cast;
            # segmentation only sees percentiles, so a common scale changes nothing.
            a = a / (peak / FLOAT32_SAFE)
    a = np.asarray(a, dtype=np.float32)
    if not finite.all():
        a = np.where(finite, a, a[finite].min()).astype(np.float32)
    return a


NORMALISE_CHUNK = 1 << 22  # elements mapped at once: float64 temporaries of 32 MB, not of the whole volume


def normalise_range(a: np.ndarray, name: str = "image",
                    percentiles: Tuple[float, float] = PERCENTILES) -> Tuple[float, float]:
    """(lo, hi) that normalise maps to 0 and 1: robust percentiles of ``a``, or its min and max when
    they coincide (sparse images such as masks or nuclei on black). Rejects constant images, which
    carry nothing to segment. Integer arrays give what their float32 copy would."""
    sample = a.ravel()
    if sample.size > 2_000_000:
        # Percentiles of a strided sample are within noise of the full ones and
        # keep large volumes cheap.
        sample = sample[:: sample.size // 1_000_000]
    if a.dtype.kind in "iub":  # exact in float32 for the values finite_float would give
        sample = sample.astype(np.float32)
    lo, hi = np.percentile(sample, percentiles)
    if hi <= lo:
        lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        raise PancakesInputError(f"{name}: image is constant (every pixel is {lo:g}); nothing to segment")
    return lo, hi


def apply_range(a: np.ndarray, lo: float, hi: float, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``a`` mapped linearly from [lo, hi] to [0, 1], clipped -> float32 (into ``out`` when given:
    float32, C-contiguous, shaped like ``a``; may be ``a`` itself)."""
    if out is None:
        out = np.empty(a.shape, np.float32)
    # Chunk by chunk, with the same float64 arithmetic as one whole-array expression (so the same
    # values): on a 512x512x400 CT that expression held ~2.5 GB of float64 temporaries at once.
    src, dst = np.ascontiguousarray(a).reshape(-1), out.reshape(-1)
    for start in range(0, src.size, NORMALISE_CHUNK):
        part = src[start : start + NORMALISE_CHUNK]
        dst[start : start + NORMALISE_CHUNK] = np.clip((part - lo) / (hi - lo), 0.0, 1.0)
    return out


def normalise(a: np.ndarray, name: str = "image", percentiles: Tuple[float, float] = PERCENTILES,
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """Map robust percentiles of ``a`` (any shape) to [0, 1], clipped -> float32 (normalise_range,
    then apply_range). ``out`` receives the result: a CT of 100 M voxels then needs no second
    float32 copy."""
    lo, hi = normalise_range(a, name, percentiles)
    return apply_range(a, lo, hi, out)
