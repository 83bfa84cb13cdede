"""Whole-image segmentation baselines that need no training, for comparison with Pancakes.

Each baseline maps images float32 [S, H, W] in [0, 1] to label maps int [S, M, H, W]
with values 1..K: M maps per image whose label counts spread over 2..K
(`label_counts`), as Pancakes' M protocols give several granularities.
Every baseline orders its labels by mean intensity (darkest = 1), the one cue that can
make a label mean the same thing in different images; that is the fairest, strongest
version of each for the set metrics.

Example::

    maps = BASELINES["kmeans_intensity"](images, M=8, K=20)   # [S, 8, H, W]
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from skimage.filters import threshold_multiotsu
from skimage.segmentation import felzenszwalb as _felzenszwalb
from skimage.segmentation import slic as _slic

Baseline = Callable[..., np.ndarray]

# threshold_multiotsu searches all threshold tuples: 4 classes take ~0.03 s at 256 bins,
# 5 classes ~2.6 s at 256 bins but ~0.01 s at 64 bins, 6 classes over a minute.
_OTSU_BINS = {2: 256, 3: 256, 4: 256, 5: 64}


def label_counts(M: int, K: int) -> np.ndarray:
    """Number of labels of each of the M maps: np.linspace(2, K, M) rounded.

    Returns int [M]. M = 1 gives [K] (the finest, as one protocol must serve all);
    K = 1 gives all ones.
    """
    if M < 1 or K < 1:
        raise ValueError(f"need M >= 1 and K >= 1, got M={M}, K={K}")
    if M == 1 or K < 2:
        return np.full(M, K, dtype=np.int64)
    return np.rint(np.linspace(2, K, M)).astype(np.int64)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"need images [S, H, W], got shape {images.shape}")
    return images


def _per_map(
    images: np.ndarray, M: int, K: int, one: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Apply one(image [H, W], count) -> int [H, W] in 1..count for every image and map."""
    images = _check_images(images)
    counts = label_counts(M, K)
    out = np.empty((images.shape[0], M) + images.shape[1:], dtype=np.int64)
    for s, image in enumerate(images):
        for m, count in enumerate(counts):
            out[s, m] = one(image, int(count)) if count > 1 else 1
    return out


def _order_by_intensity(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Relabel segments (any ints) 1..n by increasing mean intensity. Returns int [H, W]."""
    values, inverse = np.unique(segments, return_inverse=True)
    means = ndimage.mean(image, labels=inverse.reshape(segments.shape),
                         index=np.arange(len(values)))
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(means, kind="stable")] = np.arange(1, len(values) + 1)
    return rank[inverse].reshape(segments.shape)


def _cap(image: np.ndarray, segments: np.ndarray, count: int) -> np.ndarray:
    """At most `count` labels: keep the count - 1 largest segments, merge the rest into one.

    Over-segmenting methods cannot be told an exact number of segments, so the small
    leftovers are pooled; labels then follow intensity order. Returns int [H, W] in 1..count.
    """
    values, inverse, sizes = np.unique(segments, return_inverse=True, return_counts=True)
    if len(values) > count:
        keep = np.zeros(len(values), dtype=bool)
        keep[np.argsort(-sizes, kind="stable")[:count - 1]] = True
        inverse = np.where(keep[inverse], inverse, -1)
    return _order_by_intensity(image, inverse.reshape(segments.shape))


def _multi_otsu_one(image: np.ndarray, count: int) -> np.ndarray:
    thresholds = None
    if count in _OTSU_BINS:
        try:
            thresholds = threshold_multiotsu(image, classes=count, nbins=_OTSU_BINS[count])
        except ValueError:
            # Fewer distinct grey values than classes: quantiles still give a valid map.
            thresholds = None
    if thresholds is None:
        # Beyond 5 classes the exhaustive Otsu search is far too slow; equal-population
        # quantile thresholds are the usual cheap stand-in.
        thresholds = np.quantile(image, np.linspace(0, 1, count + 1)[1:-1])
    # digitize puts values equal to a threshold above it, as multi-Otsu's own np.digitize use.
    return np.digitize(image, np.unique(thresholds)).astype(np.int64) + 1


def multi_otsu(images: np.ndarray, M: int = 8, K: int = 20, seed: int = 0) -> np.ndarray:
    """Multi-Otsu intensity thresholds (<= 5 classes), quantile thresholds above that.

    images: float32 [S, H, W] in [0, 1]. Returns int [S, M, H, W] in 1..K, darkest = 1.
    Deterministic: seed is accepted for a common baseline signature.
    """
    return _per_map(images, M, K, _multi_otsu_one)


def _kmeans_one(image: np.ndarray, count: int) -> np.ndarray:
    x = image.reshape(-1, 1).astype(np.float64)
    # Centres spread evenly over the robust intensity range: deterministic, and unlike
    # quantiles they do not all land in a dominant background. A cluster left empty keeps
    # its centre (kmeans2's "warn"), so its label simply does not occur.
    low, high = np.percentile(x, [0.5, 99.5])
    init = np.linspace(low, high, count).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "One of the clusters is empty" on flat images
        centres, assign = kmeans2(x, init, minit="matrix", iter=20)
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(centres[:, 0], kind="stable")] = np.arange(1, count + 1)
    return rank[assign].reshape(image.shape)


def kmeans_intensity(images: np.ndarray, M: int = 8, K: int = 20, seed: int = 0) -> np.ndarray:
    """1-D k-means on pixel intensity, labels sorted by cluster mean (darkest = 1).

    images: float32 [S, H, W] in [0, 1]. Returns int [S, M, H, W] in 1..K.
    Deterministic (evenly spread initial centres): seed is accepted for a common signature.
    """
    return _per_map(images, M, K, _kmeans_one)


def slic(images: np.ndarray, M: int = 8, K: int = 20, seed: int = 0) -> np.ndarray:
    """SLIC superpixels on the grey image, capped to `count` labels, intensity-ordered.

    SLIC yields about half the n_segments asked for on 128x128 images after its
    connectivity step, so it is asked for 2 * count; compactness 0.1 suits [0, 1]
    intensities. images: float32 [S, H, W]. Returns int [S, M, H, W] in 1..K.
    Deterministic: seed is accepted for a common baseline signature.
    """
    def one(image: np.ndarray, count: int) -> np.ndarray:
        segments = _slic(image, n_segments=2 * count, compactness=0.1,
                         channel_axis=None, start_label=1)
        return _cap(image, segments, count)

    return _per_map(images, M, K, one)


def felzenszwalb(images: np.ndarray, M: int = 8, K: int = 20, seed: int = 0) -> np.ndarray:
    """Felzenszwalb graph segmentation, scale set for ~count segments, capped, intensity-ordered.

    Segment count falls roughly as 1 / scale; scale = 0.2 * H * W / count was calibrated
    on 128x128 images, and is halved once when it gives too few segments.
    images: float32 [S, H, W]. Returns int [S, M, H, W] in 1..K.
    Deterministic: seed is accepted for a common baseline signature.
    """
    def one(image: np.ndarray, count: int) -> np.ndarray:
        area = image.size
        scale = 0.2 * area / count
        min_size = max(1, area // (20 * count))  # stops specks from eating label slots
        segments = _felzenszwalb(image, scale=scale, sigma=0.8, min_size=min_size)
        if len(np.unique(segments)) < count:
            segments = _felzenszwalb(image, scale=scale / 2, sigma=0.8, min_size=min_size)
        return _cap(image, segments, count)

    return _per_map(images, M, K, one)


def trivial(images: np.ndarray, M: int = 8, K: int = 20, seed: int = 0) -> np.ndarray:
    """One label over the whole image: the floor any method must beat.

    images: float32 [S, H, W]. Returns int [S, M, H, W], all ones.
    """
    images = _check_images(images)
    label_counts(M, K)  # same argument checks as the other baselines
    return np.ones((images.shape[0], M) + images.shape[1:], dtype=np.int64)


BASELINES: Dict[str, Baseline] = {
    "trivial": trivial,
    "multi_otsu": multi_otsu,
    "kmeans_intensity": kmeans_intensity,
    "slic": slic,
    "felzenszwalb": felzenszwalb,
}
