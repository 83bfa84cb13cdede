"""The seed a refinement starts from: the chosen label's confident core, not its whole mask.

Why (issue 21): the best Pancakes label covers its structure and, on brain and abdominal MR, two to
three times as much neighbouring tissue, so most sessions opened with a negative click that also ate
the target, and from the label the refiner trailed an empty start at clicks 2-4 (by up to 5 points
on the dev split's test half, distinct images). The wrong parts are where the network hesitates: the
pixels where the label's probability is at least SEED_CORE are mostly inside the target. Seeded with
that core, the first click usually adds what is missing instead of removing what is wrong.

Chosen on the dev split's select half (distinct images, refiner run 6 flip-averaged), Dice after
1 / 2 / 3 clicks: the whole label 0.553 / 0.658 / 0.722, an empty start 0.585 / 0.697 / 0.772, the
core at 0.3 / 0.5 / 0.7 / 0.8 / 0.9: 0.569 / 0.608 / 0.612 / 0.619 / 0.619 at one click, 0.791 at three
for 0.8 and 0.9; an eroded label (2 or 4 pixels) gained less (0.565 / 0.576 at one click).
MODEL_CARD.md, "Seeding from the label's core", has the test-half figures.

Example::

    probs = model.probabilities(encoded)[i]          # float32 [M, K, H, W]
    seed = label_core(probs[m, k])                   # bool [H, W]
    mask = refiner.refine(image, seed, positive=[(40, 52)])
"""
from __future__ import annotations

import numpy as np

from ..errors import PancakesInputError

# The probability a pixel of the chosen label needs to join the seed.
SEED_CORE = 0.8


def label_core(probability: np.ndarray, threshold: float = SEED_CORE) -> np.ndarray:
    """The chosen label's probability float [..., H, W] in [0, 1] -> bool mask, True where it is >= threshold."""
    p = np.asarray(probability, dtype=np.float32)
    if p.ndim < 2:
        raise PancakesInputError(f"label probability: need an array of at least 2 dimensions, got shape {p.shape}")
    if not 0.0 < threshold <= 1.0:
        raise PancakesInputError(f"seed core threshold {threshold!r}: must lie in (0, 1]")
    if not np.isfinite(p).all() or p.min(initial=0.0) < 0.0 or p.max(initial=0.0) > 1.0 + 1e-6:
        raise PancakesInputError("label probability: values must be finite and lie in [0, 1]")
    return p >= threshold


def core_byte(threshold: float = SEED_CORE) -> int:
    """The confidence byte (uint8 floor(255 p), pancakes.predictor.Predictor.confidence) at or above which a
    label's probability p reaches ``threshold``: floor(255 p) >= floor(255 t) when p >= t, and below it when
    p < floor(255 t) / 255. For 0.8 that is exact: 204 / 255 is 0.8."""
    if not 0.0 < threshold <= 1.0:
        raise PancakesInputError(f"seed core threshold {threshold!r}: must lie in (0, 1]")
    return int(np.floor(255.0 * threshold + 1e-9))
