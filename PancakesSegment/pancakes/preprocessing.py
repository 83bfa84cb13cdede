"""Turn arbitrary 2D images into model input and map model output back.

Every image goes through: checks (finite, not constant, big enough) ->
robust percentile normalisation to [0, 1] -> resize so the longer physical side
fills the model's input, padding the shorter side (never stretching) -> the
inverse on the way out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PancakesInputError
from .label_upsampling import upsampled_argmax

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


@dataclass(frozen=True)
class Fit:
    """Where an image of ``shape`` sits inside the square model input of ``size``."""

    shape: Tuple[int, int]  # original (H, W)
    inner: Tuple[int, int]  # resized (h, w) before padding
    offset: Tuple[int, int]  # top-left of the resized image inside the square
    size: int


def plan_fit(shape: Tuple[int, int], size: int, spacing: Tuple[float, float] = (1.0, 1.0)) -> Fit:
    """Resize plan: the longer physical side becomes ``size``; the other is padded."""
    h_mm, w_mm = shape[0] * spacing[0], shape[1] * spacing[1]
    longest = max(h_mm, w_mm)
    h = max(1, min(size, int(round(size * h_mm / longest))))
    w = max(1, min(size, int(round(size * w_mm / longest))))
    return Fit(tuple(shape), (h, w), ((size - h) // 2, (size - w) // 2), size)


def to_model_input(batch: torch.Tensor, fit: Fit) -> torch.Tensor:
    """[B, H, W] normalised images sharing one ``fit`` -> [B, 1, size, size]."""
    x = batch[:, None].float()
    if tuple(x.shape[-2:]) != fit.inner:
        x = F.interpolate(x, size=fit.inner, mode="bilinear", align_corners=False, antialias=True)
    out = x.new_zeros(x.shape[0], 1, fit.size, fit.size)
    (t, l), (h, w) = fit.offset, fit.inner
    out[:, :, t : t + h, l : l + w] = x
    return out


def from_model_output(maps: torch.Tensor, fit: Fit) -> torch.Tensor:
    """[B, C, size, size] logits -> [B, C, H, W] at the original image size.

    Interpolating logits (not labels) keeps boundaries smooth when upsampling.
    """
    (t, l), (h, w) = fit.offset, fit.inner
    inner = maps[:, :, t : t + h, l : l + w]
    if (h, w) == tuple(fit.shape):
        return inner
    return F.interpolate(inner, size=fit.shape, mode="bilinear", align_corners=False)


def labels_from_logits(logits: torch.Tensor, fit: Fit) -> torch.Tensor:
    """logits [B, P, K, S, S] -> 1-based labels [B, P, H, W] at the original size (uint8; int16 past 255).

    The labels are those of the bilinearly resized logits (not of resized labels), so
    boundaries stay smooth; label_upsampling gets them without resizing all P*K maps.
    """
    (t, l), (h, w) = fit.offset, fit.inner
    lab = upsampled_argmax(logits[..., t : t + h, l : l + w], fit.shape) + 1
    return lab.to(torch.uint8 if logits.shape[2] < 256 else torch.int16)


def prepare_images(images: Sequence[np.ndarray], names: Optional[Sequence[str]] = None) -> list:
    """Validate and normalise a collection of 2D images -> list of float32 [H, W] in [0, 1]."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        raise PancakesInputError("images: expected a list or [N, H, W] array of 2D images, got one 2D image")
    if names is not None and len(names) != len(images):
        raise PancakesInputError(f"names: {len(names)} names for {len(images)} images")
    out = []
    for i, img in enumerate(images):
        name = names[i] if names is not None else f"image {i}"
        out.append(normalise(to_grey(img, name), name))
    if not out:
        raise PancakesInputError("images: the collection is empty")
    return out


def pixel_size(values, n: int, name: str) -> Tuple[float, ...]:
    """``n`` positive finite pixel sizes (mm) from ``values``, or PancakesInputError naming ``name``."""
    try:
        sizes = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        sizes = ()
    if len(sizes) != n or not all(np.isfinite(v) and v > 0 for v in sizes):
        raise PancakesInputError(f"{name} = {values!r}: expected {n} pixel sizes, positive and finite")
    return sizes


def check_spacings(spacings: Optional[Sequence[Sequence[float]]], n: int) -> List[Tuple[float, ...]]:
    """Pixel sizes (row, col) of ``n`` images; None means 1 x 1 for all.

    A size of 0 or below used to squash the image into one model row without a word.
    """
    if spacings is None:
        return [(1.0, 1.0)] * n
    if len(spacings) != n:
        raise PancakesInputError(f"spacings: {len(spacings)} given for {n} images")
    return [pixel_size(sp, 2, f"spacings[{i}]") for i, sp in enumerate(spacings)]
