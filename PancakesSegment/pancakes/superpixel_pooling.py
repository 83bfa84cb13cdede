"""Superpixel pooling: each protocol's label probabilities are averaged within each image's superpixels.

Why (issue 20): the network's label boundaries are drawn at 128 x 128 from features that see a wide
context, so they cut across the edges of the image, and per-image over-segmentations
(Felzenszwalb) beat the model on coarse regions of single images. Felzenszwalb's graph
segmentation finds regions whose pixels are alike and whose borders lie on intensity edges;
blending each pixel's probabilities with the mean over its region pulls every label boundary
onto those edges. The labels still come from the network, so label k of protocol m keeps its
meaning in every image; only where each boundary runs follows the image.

Soft outputs stay probabilities: the blend of two probability vectors is one. Outside
``inner`` (the padding around an image in the model input) nothing changes.

Example::

    logits = pool_in_superpixels(logits, images, inner)   # [B, P, K, S, S], images [B, 1, S, S]
"""
from __future__ import annotations

import importlib.util
from typing import Optional

import numpy as np
import torch

from .coarse_intensity import Inner

# Felzenszwalb's scale (larger: fewer, larger regions) and minimum region size in model-input
# pixels, and the share of each pixel's probabilities replaced by its region's mean. Chosen on the
# select half (MODEL_CARD.md, "Superpixel pooling"): scale 20 with the full region mean raised
# S = 1 most but S = 5 less; scale 50 with half of it raised every S.
SCALE = 50.0
MIN_SIZE = 10
BLEND = 0.5
SIGMA = 0.8  # Felzenszwalb's own pre-smoothing, as the Felzenszwalb baseline uses
# Probabilities are floored before the log so that a label absent from a region keeps a finite logit.
PROB_FLOOR = 1.0e-8


def available() -> bool:
    """Whether scikit-image, which segments the superpixels, can be imported (Slicer's Python may lack it)."""
    return importlib.util.find_spec("skimage") is not None


def superpixels(image: np.ndarray, scale: float = SCALE, min_size: int = MIN_SIZE) -> np.ndarray:
    """image float [H, W] -> region ids int64 [H, W], 0..n-1 (Felzenszwalb graph segmentation)."""
    # Imported here, not at the top: the engine imports this module, and a missing scikit-image must only
    # turn the pooling off (Pancakes.set_superpixels), not stop the engine from loading.
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(np.asarray(image, np.float64), scale=scale, sigma=SIGMA, min_size=min_size).astype(np.int64)


def pool_probabilities(prob: torch.Tensor, regions: torch.Tensor, blend: float = BLEND) -> torch.Tensor:
    """prob [C, H, W] (any channels) and regions int64 [H, W] -> (1 - blend) prob + blend * region mean."""
    C, H, W = prob.shape
    ids = regions.reshape(-1).to(prob.device)
    n = int(ids.max()) + 1
    flat = prob.reshape(C, H * W)
    sums = torch.zeros(C, n, dtype=prob.dtype, device=prob.device).index_add_(1, ids, flat)
    count = torch.bincount(ids, minlength=n).clamp(min=1).to(prob.dtype)
    mean = (sums / count)[:, ids].reshape(C, H, W)
    return (1.0 - blend) * prob + blend * mean


def pool_in_superpixels(logits: torch.Tensor, images: torch.Tensor, inner: Optional[Inner] = None,
                        blend: float = BLEND, scale: float = SCALE) -> torch.Tensor:
    """Decoded logits [B, P, K, S, S] -> the same shape, each protocol's boundaries on the image's edges.

    images: [B, 1, S, S] model inputs in [0, 1]; inner: (top, left, height, width) of the image inside
    them (None: all of it). Returns log-probabilities (a softmax over K gives the pooled probabilities).
    """
    if blend <= 0:
        return logits
    B, P, K, S, _ = logits.shape
    t, l, h, w = (0, 0, S, S) if inner is None else inner
    out = torch.log_softmax(logits.float(), dim=2)
    for b in range(B):
        crop = images[b, 0, t:t + h, l:l + w].float().cpu().numpy()
        regions = torch.from_numpy(superpixels(crop, scale))
        prob = out[b, :, :, t:t + h, l:l + w].exp().reshape(P * K, h, w)
        pooled = pool_probabilities(prob, regions, blend).clamp(min=PROB_FLOOR)
        out[b, :, :, t:t + h, l:l + w] = torch.log(pooled).reshape(P, K, h, w)
    return out.to(logits.dtype)
