"""Insert small lesion-like blobs into a training set, as one new label.

Why: the coarse targets that lifted figure/ground (granularity.py) cost small
structures, most of all the held-out lung lesions: protocols used fewer labels, and a
small blob shared its label with the tissue around it. The training data hold few small
structures (nuclei and three MR lesions). This adds them anywhere: in every image of a
set, one to three small blobs of the same contrast become one new label, so that some
labels of some protocols learn to stay on a small, distinct structure.

The blobs are ellipses with a soft rim and a little texture, placed inside the labelled
anatomy (or the image's body when the labels mark only small things), brighter or darker
than their surroundings by one contrast drawn per set: the same kind of structure in
every image, as a label must be. Where the surroundings leave no room on that side (bone
at the top of the range), the blob takes the other side.

Example::

    rng = np.random.default_rng(0)
    task = insert_lesions(task, rng)     # task.label is the new lesion label
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .taskset import TaskSet

# Blob radii as fractions of the image's shorter side: 1.3-3.8 pixels at the 64^2 training
# size, 2.6-7.7 at 128^2 (the lung lesions of the dev split span about 3-10 pixels at 128^2).
RADIUS_RANGE = (0.02, 0.06)
CONTRAST_RANGE = (0.15, 0.45)
MAX_LESIONS = 3
RIM = 0.35  # soft edge, as a fraction of the radius
# Labels covering less than this share of an image mark small things, not the anatomy;
# then blobs go where the image is brighter than BODY_LEVEL of its maximum.
MIN_ANATOMY_SHARE = 0.2
BODY_LEVEL = 0.1


def _blob(shape: tuple, centre: np.ndarray, radii: np.ndarray, angle: float) -> np.ndarray:
    """Normalised elliptic distance [H, W]: <= 1 inside the ellipse."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    dy, dx = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dy + s * dx, -s * dy + c * dx
    return np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2)


def insert_lesions(task: TaskSet, rng: np.random.Generator, max_lesions: int = MAX_LESIONS) -> TaskSet:
    """``task`` with 1..``max_lesions`` blobs per image, labelled as one new label (the set's
    sampled label). Images and label maps are copies; ``task`` is not modified."""
    n_img, h, w = task.images.shape
    new_label = int(task.labelmaps.max()) + 1
    images = task.images.astype(np.float32, copy=True)
    maps = task.labelmaps.copy()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    contrast = float(rng.uniform(*CONTRAST_RANGE))
    side = min(h, w)
    for s in range(n_img):
        allowed = task.labelmaps[s] > 0
        if allowed.mean() < MIN_ANATOMY_SHARE:
            # The labels mark only small things (a lesion, nuclei): the body is what is not dark.
            allowed = images[s] > BODY_LEVEL * float(images[s].max())
        inside = np.argwhere(allowed)
        if len(inside) < 10:  # nothing to go by: anywhere away from the border
            allowed = np.ones((h, w), bool)
            centres = np.zeros((h, w), bool)
            centres[int(0.1 * h): h - int(0.1 * h), int(0.1 * w): w - int(0.1 * w)] = True
            inside = np.argwhere(centres)
        for _ in range(int(rng.integers(1, max_lesions + 1))):
            centre = inside[int(rng.integers(len(inside)))].astype(np.float32)
            radii = np.maximum(rng.uniform(*RADIUS_RANGE, size=2) * side, 1.5).astype(np.float32)
            d = _blob((h, w), centre, radii, float(rng.uniform(0, np.pi)))
            # 1 inside, a soft rim just outside; a lesion does not grow out of the anatomy into air.
            weight = np.clip((1 + RIM - d) / RIM, 0, 1) * allowed
            ring = (d > 1.5) & (d < 3)
            base = float(np.median(images[s][ring])) if ring.any() else float(images[s].mean())
            value = base + sign * contrast
            if not 0 <= value <= 1:  # no room on this side (a bright bone, black air): the other side
                value = base - sign * contrast
            texture = rng.normal(0, 0.03, (h, w)).astype(np.float32)
            images[s] = images[s] * (1 - weight) + (value + texture) * weight
            maps[s][(d <= 1) & allowed] = new_label
    return replace(task, images=np.clip(images, 0, 1), labelmaps=maps, label=new_label,
                   protocol=f"{task.protocol}:lesions")
