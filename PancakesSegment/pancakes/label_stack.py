"""Label volumes filled batch by batch, straight into SimpleITK images.

The streamed segmentation used to fill M numpy arrays and convert each to an image at the
end: that conversion held one label volume twice (250 MB more at 512x512x1000), the only
part of peak memory that still grew with depth faster than the input and the labels
(benchmarks/bench_large_volume.py). Pasting each batch into images allocated up front
(SimpleITK pastes in place through ``image[...] = slab``) leaves nothing to convert.

Usage::

    images = empty_label_images(8, depth=400, shape=(512, 512))   # slice order: size (cols, rows, depth)
    paste_slices(images, start=32, labels=batch_labels)            # uint8 [P, B, rows, cols]
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk


def empty_label_images(count: int, depth: int, shape: Tuple[int, int]) -> List[sitk.Image]:
    """``count`` zeroed uint8 images of ``depth`` slices of ``shape`` (rows, cols), in slice order."""
    rows, cols = shape
    return [sitk.Image([int(cols), int(rows), int(depth)], sitk.sitkUInt8) for _ in range(count)]


def paste_slices(images: Sequence[sitk.Image], start: int, labels: np.ndarray) -> None:
    """Write labels uint8 [P, B, rows, cols] into slices start..start+B of the P images, in place."""
    if labels.ndim != 4 or labels.shape[0] != len(images):
        raise ValueError(f"labels of shape {labels.shape} do not fit {len(images)} label images")
    for image, slab in zip(images, labels):
        # One slab-sized copy; the whole-volume buffer is written in place, not copied.
        image[:, :, start : start + slab.shape[0]] = sitk.GetImageFromArray(np.ascontiguousarray(slab, np.uint8))
