"""What the chosen protocol says about a click: pixels that share the clicked pixel's label are likely inside.

Why (issue 21): where the protocol model hesitates (brain structures, abdominal MR organs) the chosen
label's core is empty, and the refiner starts as from nothing, although the protocol still knows which
pixels go with the clicked one. After each update the refiner's logits get

    weight * (sim(x) - bias),   sim(x) = max over positive clicks p with label(x) == label(p) of q(x) * q(p)

where label is the protocol's label map and q its probability (the softmax's maximum): the chance that x
and p carry the same label, counting the top label only. Pixels of another label get -weight * bias.
Negative clicks add nothing: a wrong part of a label usually shares the label with the right part, and
pushing the whole label down wiped out the target (select half, refiner run 11: the first click from
the core fell 0.03 with negative clicks counted, none without).

The logits with the prior are what the session feeds back as the previous prediction, as the screen did.

Example::

    probs = model.probabilities(encoded)[i][m]        # float32 [K, H, W], the chosen protocol
    labels, confidence = probs.argmax(0), probs.max(0)
    logits = refiner.refine_logits(image, seed, positive=[(40, 52)], label_prior=(labels, confidence))
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..errors import PancakesInputError

# Chosen on the dev split's select half with refiner run 11 (MODEL_CARD.md, "The chosen protocol's label
# prior"); the test half was scored once, after the choice.
PRIOR_WEIGHT = 4.0
PRIOR_BIAS = 0.3


def check_label_prior(labels: np.ndarray, confidence: np.ndarray,
                      shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """labels int [H, W], confidence float [H, W] in [0, 1] (uint8 read as /255) -> checked arrays of ``shape``."""
    lab, conf = np.asarray(labels), np.asarray(confidence)
    if lab.shape != tuple(shape) or conf.shape != tuple(shape):
        raise PancakesInputError(f"label prior: labels {lab.shape} and confidence {conf.shape} must both have the "
                                 f"image's shape {tuple(shape)}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise PancakesInputError(f"label prior: labels must be integers, got {lab.dtype}")
    if conf.dtype == np.uint8:  # how the Slicer logic keeps a volume's confidence: one byte a voxel
        conf = conf.astype(np.float32) / 255.0
    conf = conf.astype(np.float32, copy=False)
    if not np.isfinite(conf).all() or conf.min(initial=0.0) < 0.0 or conf.max(initial=0.0) > 1.0 + 1e-6:
        raise PancakesInputError("label prior: confidence must be finite and lie in [0, 1]")
    return lab, conf


def label_prior(labels: np.ndarray, confidence: np.ndarray, positive: Sequence[Sequence[float]],
                weight: float = PRIOR_WEIGHT, bias: float = PRIOR_BIAS) -> np.ndarray:
    """Log-odds float32 [H, W] to add to the refiner's logits (zeros without positive clicks).

    labels int [H, W] and confidence float [H, W] in [0, 1]: the chosen protocol's label map and its
    top probability at the image's own size; positive: checked (row, col) clicks in that image.
    """
    lab, conf = check_label_prior(labels, confidence, np.shape(labels))
    if not positive:
        return np.zeros(lab.shape, np.float32)
    rows = np.clip(np.rint([p[0] for p in positive]).astype(int), 0, lab.shape[0] - 1)
    cols = np.clip(np.rint([p[1] for p in positive]).astype(int), 0, lab.shape[1] - 1)
    # Per clicked label, its most confident click: sim(x) = q(x) * that confidence on x's label, else 0.
    best = {}
    for value, q in zip(lab[rows, cols].tolist(), conf[rows, cols].tolist()):
        best[value] = max(best.get(value, 0.0), q)
    partner = np.zeros(lab.shape, np.float32)
    for value, q in best.items():
        partner[lab == value] = q
    return (weight * (conf * partner - bias)).astype(np.float32)
