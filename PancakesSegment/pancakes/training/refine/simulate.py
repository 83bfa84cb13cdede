"""Simulated click sessions in the model's own 128 x 128 frame (training checks and benchmarks).

One session: start from a seed, click where the error is largest, refine, repeat;
record the Dice after 0, 1, ..., n clicks. Clicks accumulate, and each step feeds
the previous prediction back, as in the interactive tool.

Example::

    curve = click_curve(net, image, target, seed, n_clicks=10)   # float [11]
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...evaluation.metrics import dice
from ...refine.clicks import batch_click_maps, next_click, seed_probability  # noqa: F401  (re-exported)
from ...refine.geodesic_prior import geodesic_prior
from ...refine.intensity_prior import intensity_prior
from ...refine.label_prior import PRIOR_BIAS, PRIOR_WEIGHT, label_prior
from ...modeling.refine_net import RefineNet  # noqa: F401  (type of ``net``; any module with its forward works)


def model_input(images: np.ndarray, seeds: np.ndarray, positive: Sequence[list], negative: Sequence[list],
                previous: np.ndarray, device=None) -> torch.Tensor:
    """Batch of model inputs: images, seeds, previous float [N, S, S]; clicks per sample -> [N, 5, S, S] on ``device``."""
    size = images.shape[-1]
    planes = np.stack([images, seeds.astype(np.float32), previous.astype(np.float32)], axis=1)
    planes = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).to(device)
    maps = batch_click_maps(positive, negative, size, device)
    return torch.cat([planes[:, :2], maps, planes[:, 2:]], dim=1)


def click_curves(net: torch.nn.Module, images: np.ndarray, targets: np.ndarray, seeds: np.ndarray,
                 n_clicks: int = 10, device: torch.device = torch.device("cpu"),
                 seed_prior: float = 1.0,
                 priors: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 prior_form: Tuple[float, float] = (PRIOR_WEIGHT, PRIOR_BIAS),
                 geodesic: bool = False, intensity: bool = False) -> np.ndarray:
    """Dice after 0..n_clicks simulated clicks for a batch of sessions.

    images float [N, S, S] in [0, 1]; targets, seeds bool [N, S, S] -> float64 [N, n_clicks + 1].
    Column 0 is the seed's own Dice. A session whose mask is already perfect gets no new
    click (the network still runs on the clicks it has). ``seed_prior``: the refiner's
    metadata value (see seed_probability). ``priors``: the chosen protocol's (labels int [N, S, S],
    confidence float [N, S, S]); each update's logits then get pancakes.refine.label_prior, as the
    Refiner adds it, and are fed back with it; ``prior_form``: its (weight, bias), to screen others.
    ``geodesic``: each update's logits also get the clicks' geodesic reach (pancakes.refine.geodesic_prior),
    as the Refiner adds it by default; training's own checks leave it out, to follow the network alone.
    ``intensity``: last, each update's logits get the mask's own intensities near its border
    (pancakes.refine.intensity_prior), as the Refiner adds them by default; training's checks leave them out.
    """
    n = images.shape[0]
    masks = seeds.astype(bool).copy()
    previous = seed_probability(seeds, seed_prior)
    pos: List[list] = [[] for _ in range(n)]
    neg: List[list] = [[] for _ in range(n)]
    curves = [dice(masks, targets)]
    for _ in range(n_clicks):
        for i in range(n):
            click = next_click(masks[i], targets[i])
            if click is not None:
                (pos if click[2] else neg)[i].append((float(click[0]), float(click[1])))
        with torch.no_grad():
            logits = net(model_input(images, seeds, pos, neg, previous, device))[:, 0].cpu().numpy()
        if priors is not None:
            logits = logits + np.stack([label_prior(priors[0][i], priors[1][i], pos[i], *prior_form) for i in range(n)])
        if geodesic:
            logits = logits + np.stack([geodesic_prior(images[i], pos[i], neg[i]) for i in range(n)])
        if intensity:
            logits = logits + np.stack([intensity_prior(images[i], logits[i], pos[i]) for i in range(n)])
        previous = torch.sigmoid(torch.from_numpy(logits)).numpy()
        masks = logits > 0
        curves.append(dice(masks, targets))
    return np.stack(curves, axis=1)
