"""The mask's own intensities: near the mask's border, pixels that look like the inside go in, the rest out.

Why (issue 21): an abdominal MR organ is brighter or darker than what surrounds it, so once the clicks have
marked part of it, its intensities say where its border runs. The network sees the image, but it was not
taught to read one structure's intensity from the clicks so far. In
the manner of GrabCut's colour models, each update now fits a Gaussian to the (smoothed) intensities inside
the current mask and one to a ring just outside it, each pixel weighted by how sure the logits are, and adds
to the logits, within a band of ``band`` pixels either side of the mask's border, their log-likelihood ratio:

    weight * clip(((I(x) - mean_ring)^2 - (I(x) - mean_inside)^2) / (2 * s^2), -clip, clip)

with s^2 the mean of the two variances. One shared variance puts the boundary halfway between the means.
With a variance each, a homogeneous side's narrow Gaussian lost every pixel a little off its mean to the
broad one, even pixels far nearer its own mean: on the select half the shared variance gained more at
3 clicks (+0.008 against +0.006).

Far from the border it adds nothing, so a wrong region elsewhere is left to the clicks. Before the first
positive click there is nothing of the user's to fit, so it adds nothing either.

It is computed in the model's 128 x 128 frame (the fitted image, without the padding), where it was chosen,
and resized back, like the geodesic reach (pancakes.refine.geodesic_prior).

Example::

    logits = logits + intensity_prior(model_image, logits, positive=[(40, 52)])   # float32 [S, S]
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

# Chosen on the dev split's select half with refiner run 11 flip-averaged, from the core with the label prior
# and the geodesic reach (MODEL_CARD.md, "The mask's own intensities"); the test half was scored once, after
# the choice.
INTENSITY_WEIGHT = 1.0
INTENSITY_RING = 4      # model pixels outside the mask whose intensities are the outside's
INTENSITY_BAND = 2      # model pixels either side of the mask's border where the term applies
INTENSITY_CLIP = 3.0    # the most log-likelihood ratio one pixel gets, before the weight
INTENSITY_SIGMA = 0.7   # Gaussian smoothing of the image, model pixels
MIN_SPREAD = 0.02       # floor on either Gaussian's standard deviation (images lie in [0, 1])
MIN_PIXELS = 4          # fewer pixels inside the mask or in the ring: nothing to fit


def _fit(values: np.ndarray, weights: np.ndarray) -> Tuple[float, float]:
    """Weighted mean and standard deviation (at least MIN_SPREAD) of values float [n]."""
    mean = float(np.average(values, weights=weights))
    spread = float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))
    return mean, max(spread, MIN_SPREAD)


def intensity_prior(image: np.ndarray, logits: np.ndarray, positive: Sequence[Sequence[float]],
                    weight: float = INTENSITY_WEIGHT, ring: int = INTENSITY_RING, band: int = INTENSITY_BAND,
                    clip: float = INTENSITY_CLIP, sigma: float = INTENSITY_SIGMA) -> np.ndarray:
    """Log-odds float32 [S, S] to add to ``logits`` (zeros without positive clicks or without a mask to fit).

    image float [S, S]: the model frame's image in [0, 1]; logits float [S, S]: the update's logits so far
    (network, geodesic reach and label prior), whose positive part is the current mask; positive: the
    positive clicks (only whether there are any matters).
    """
    logits = np.asarray(logits, np.float32)
    out = np.zeros(logits.shape, np.float32)
    mask = logits > 0
    if not positive or mask.sum() < MIN_PIXELS:
        return out
    outside = ndi.binary_dilation(mask, iterations=ring) & ~mask
    if outside.sum() < MIN_PIXELS:
        return out
    smooth = ndi.gaussian_filter(np.asarray(image, np.float64), sigma)
    # A pixel counts as much as the logits are sure of it: sigmoid(|logit|) in [0.5, 1).
    sure = 1.0 / (1.0 + np.exp(-np.abs(logits.astype(np.float64))))
    inside_mean, inside_spread = _fit(smooth[mask], sure[mask])
    outside_mean, outside_spread = _fit(smooth[outside], sure[outside])
    shared = (inside_spread ** 2 + outside_spread ** 2) / 2
    ratio = np.clip(((smooth - outside_mean) ** 2 - (smooth - inside_mean) ** 2) / (2 * shared), -clip, clip)
    near = ndi.binary_dilation(mask, iterations=band) & ~ndi.binary_erosion(mask, iterations=band)
    out[near] = (weight * ratio[near]).astype(np.float32)
    return out
