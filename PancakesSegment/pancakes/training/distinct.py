"""What counts as the same development item: a set's or an image's content, hashed.

Why: dev sources with few slices of a structure give the same item again and again (the test
half's lung lesion spans 5 slices: every lung set at S = 5 is the same 5 slices, and 40 of the
refine benchmark's 160 images are 5 slices drawn 8 times). A repeat adds weight to a figure but no
evidence, so reports count items by content, not by draw.

Example::

    content_key(images, target)                 # "3f2a..." for images [S, H, W] and a bool target [S, H, W]
    keep = first_occurrences(images, targets)   # bool [N]: the first of each distinct (image, target)
"""
from __future__ import annotations

import hashlib

import numpy as np


def content_key(images: np.ndarray, target: np.ndarray) -> str:
    """Short hash of images (as float32) and a target mask of the same shape."""
    h = hashlib.sha1(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(target, dtype=bool).tobytes())
    return h.hexdigest()[:16]


def first_occurrences(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """images float [N, H, W], targets bool [N, H, W] -> bool [N], True for the first of each distinct pair."""
    seen, keep = set(), np.zeros(len(images), bool)
    for i, (im, t) in enumerate(zip(images, targets)):
        key = content_key(im, t)
        keep[i] = key not in seen
        seen.add(key)
    return keep
