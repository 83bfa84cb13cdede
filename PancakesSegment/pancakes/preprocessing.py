"""Turn arbitrary 2D images into model input and map model output back.

Every image goes through: checks (finite, not constant, big enough) ->
robust percentile normalisation to [0, 1] (both in pancakes.intensity, which needs no torch) -> resize so the longer physical side
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
from .intensity import (FLOAT32_SAFE, MIN_SIDE, NORMALISE_CHUNK, PERCENTILES, apply_range, finite_float,  # noqa: F401
                        normalise, normalise_range, to_grey)  # (re-exported)
from .label_upsampling import upsampled_argmax


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


def inner_box(fit: Fit) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of the image inside the square model input (the rest is padding)."""
    return fit.offset[0], fit.offset[1], fit.inner[0], fit.inner[1]


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
    lab = upsampled_argmax(logits[..., t : t + h, l : l + w], fit.shape)  # uint8 for K < 256, int16 above
    return lab.add_(1)


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
