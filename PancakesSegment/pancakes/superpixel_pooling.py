"""Superpixel pooling: each protocol's label probabilities are averaged within each image's superpixels.

Why (issue 20): the network's label boundaries are drawn at 128 x 128 from features that see a wide
context, so they cut across the edges of the image, and per-image over-segmentations
(Felzenszwalb) beat the model on coarse regions of single images. Felzenszwalb's graph
segmentation finds regions whose pixels are alike and whose borders lie on intensity edges;
blending each pixel's probabilities with the mean over its region pulls every label boundary
onto those edges. The labels still come from the network, so label k of protocol m keeps its
meaning in every image; only where each boundary runs follows the image.

Soft outputs stay probabilities: the blend of two probability vectors is one. Outside
``inner`` (the padding around an image in the model input) the probabilities are left as they are
(their log floored at PROB_FLOOR, like every output here).

Felzenszwalb costs about as much as the pooling itself, and a decode that only switches protocol
or K sees the same images again; a RegionCache beside the cached features keeps each image's
regions, so they are segmented once per image, not once per decode.

Example::

    logits = pool_in_superpixels(logits, images, inner)   # [B, P, K, S, S], images [B, 1, S, S]
    cache = RegionCache()                                  # kept with the features of images 0..N-1
    logits = pool_in_superpixels(logits, images, inner, cache.regions(0, images, inner))
"""
from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

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


def segment_many(crops: Sequence[np.ndarray], scale: float = SCALE) -> List[np.ndarray]:
    """Felzenszwalb regions of each image float [h, w] -> int64 [h, w] each, on as many threads as torch uses.

    scikit-image's Felzenszwalb releases the GIL in its C loop and runs on one core, so while it
    segments, the network's other cores would idle: two threads segment a batch 1.6 to 1.9 times as fast
    on 2 cores (benchmarks/README.md). Each image is segmented alone, so the regions are the same.
    """
    workers = min(len(crops), max(1, torch.get_num_threads()))
    if workers <= 1:
        return [superpixels(c, scale) for c in crops]
    with ThreadPoolExecutor(workers, thread_name_prefix="superpixels") as pool:
        return list(pool.map(lambda c: superpixels(c, scale), crops))


def pool_probabilities(prob: torch.Tensor, regions: torch.Tensor, blend: float = BLEND) -> torch.Tensor:
    """prob [C, H, W] (any channels) and regions int64 [H, W] -> (1 - blend) prob + blend * region mean."""
    C, H, W = prob.shape
    ids = regions.reshape(-1).to(prob.device)
    n = int(ids.max()) + 1
    flat = prob.reshape(C, H * W)
    sums = torch.zeros(C, n, dtype=prob.dtype, device=prob.device).index_add_(1, ids, flat)
    count = torch.bincount(ids, minlength=n).clamp(min=1).to(prob.dtype)
    # index_select, not fancy indexing: 5x faster for the [C, H * W] gather (benchmarks/README.md).
    mean = (sums / count).index_select(1, ids).reshape(C, H, W)
    # In place on the fresh gather: torch.lerp into a new tensor cost 8x as much (9.4 against 1.2 ms for
    # 160 maps of 128 x 128 on one thread; benchmarks/README.md).
    return mean.mul_(blend).add_(prob, alpha=1.0 - blend)  # (1 - blend) * prob + blend * mean


def _box(images: torch.Tensor, inner: Optional[Inner]) -> Inner:
    """Where the image sits in model inputs [B, 1, S, S]: ``inner``, or all of it."""
    S = images.shape[-1]
    return (0, 0, S, S) if inner is None else tuple(inner)


def regions_of(images: torch.Tensor, inner: Optional[Inner] = None, scale: float = SCALE) -> torch.Tensor:
    """Model inputs [B, 1, S, S] in [0, 1] -> region ids int64 [B, h, w] of the image inside them
    (``inner``: (top, left, h, w); None: all of it), numbered per image from 0."""
    t, l, h, w = _box(images, inner)
    crops = images[:, 0, t:t + h, l:l + w].float().cpu().numpy()
    return torch.from_numpy(np.stack(segment_many(list(crops), scale)))


class RegionCache:
    """The superpixel regions of a fixed, numbered set of images, segmented on first use.

    Lives beside the cached features of a collection or a volume (engine.Encoded,
    volume.EncodedVolume) and dies with them: image i is always the same image there, so
    its regions never go stale. Stored as int16 where the ids fit (always at the 128 x 128 model size:
    32 kB an image), else int32.
    """

    def __init__(self) -> None:
        self._by_image: Dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._by_image)

    def prefetch(self, items: Sequence[Tuple[int, torch.Tensor, Optional[Inner]]]) -> None:
        """Segment, in one threaded pass, each (index, model input [1, 1, S, S], inner) not yet known.

        For collections decoded one image at a time, whose images differ in size (so in ``inner``):
        segmenting them together keeps both cores busy (segment_many).
        """
        missing = [(i, x, _box(x, inner)) for i, x, inner in items if i not in self._by_image]
        crops = [x[0, 0, t:t + h, l:l + w].float().cpu().numpy() for _, x, (t, l, h, w) in missing]
        for (i, _, _), r in zip(missing, segment_many(crops)):
            self._store(i, torch.from_numpy(r))

    def _store(self, index: int, regions: torch.Tensor) -> None:
        self._by_image[index] = regions.to(torch.int16 if int(regions.max()) < 2**15 else torch.int32)

    def regions(self, first: int, images: torch.Tensor, inner: Optional[Inner] = None) -> torch.Tensor:
        """Images ``first .. first + B - 1``, model inputs [B, 1, S, S] -> region ids int64 [B, h, w]."""
        missing = [b for b in range(images.shape[0]) if first + b not in self._by_image]
        if missing:
            fresh = regions_of(images[missing], inner)
            for b, r in zip(missing, fresh):
                self._store(first + b, r)
        return torch.stack([self._by_image[first + b].long() for b in range(images.shape[0])])


def pool_in_superpixels(logits: torch.Tensor, images: torch.Tensor, inner: Optional[Inner] = None,
                        regions: Optional[torch.Tensor] = None, blend: float = BLEND,
                        scale: float = SCALE) -> torch.Tensor:
    """Decoded logits [B, P, K, S, S] -> the same shape, each protocol's boundaries on the image's edges.

    images: [B, 1, S, S] model inputs in [0, 1]; inner: (top, left, height, width) of the image inside
    them (None: all of it); regions: their superpixels int [B, h, w] when already known (a
    RegionCache), else segmented here at ``scale``. Returns log-probabilities (a softmax over K gives
    the pooled probabilities).
    """
    if blend <= 0:
        return logits
    B, P, K, S, _ = logits.shape
    t, l, h, w = _box(images, inner)
    if regions is None:
        regions = regions_of(images, inner, scale)
    if tuple(regions.shape) != (B, h, w):
        raise ValueError(f"regions {tuple(regions.shape)} do not match {B} images of {h}x{w}")
    # One softmax, the pooling written back into it, and one log at the end: a log-softmax, then exp and log
    # per image, cost about twice as much (fresh 10 MB tensors per image; benchmarks/README.md). Outside ``inner``
    # this gives log(max(p, PROB_FLOOR)), which has the same argmax as the log-softmax, and callers crop it away.
    out = torch.softmax(logits.float(), dim=2)
    for b in range(B):
        crop = out[b, :, :, t:t + h, l:l + w]
        crop.copy_(pool_probabilities(crop.reshape(P * K, h, w), regions[b], blend).reshape(P, K, h, w))
    return out.clamp_(min=PROB_FLOOR).log_().to(logits.dtype)
