"""The label prior in training sessions: each update's logits get what the Refiner adds in the panel.

A batch's priors are (labels int [N, S, S], confidence float [N, S, S], has bool [N]): the picked protocol's
labels and top probability for the sessions seeded from a Pancakes label (pancakes.training.refine.data.
PancakesSeedPool with ``with_prior``), nothing for perturbed-truth sessions, which have no protocol, as a
segment that is not a kept label gets none in the panel.

Example::

    logits = net(x)[:, 0] + batch_prior(priors, positive_clicks, device=logits.device)
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...refine.label_prior import label_prior

BatchPriors = Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]


def stack_priors(priors: Sequence, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per session (labels, confidence) or None -> (labels int16 [N, S, S], confidence float32 [N, S, S],
    has bool [N])."""
    n = len(priors)
    labels = np.zeros((n, *shape), np.int16)
    confidence = np.zeros((n, *shape), np.float32)
    has = np.zeros(n, bool)
    for i, prior in enumerate(priors):
        if prior is not None:
            labels[i], confidence[i], has[i] = prior[0], prior[1], True
    return labels, confidence, has


def batch_prior(priors: BatchPriors, positive: List[list], sessions: Optional[np.ndarray] = None,
                device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The label prior of ``sessions`` (default: all) given each session's positive clicks -> float32
    [len(sessions), S, S] on ``device``; zeros for sessions without a prior, and 0 (a scalar) without priors."""
    if priors is None:
        return torch.zeros((), device=device)
    labels, confidence, has = priors
    sessions = np.arange(len(has)) if sessions is None else np.asarray(sessions)
    out = np.zeros((len(sessions), *labels.shape[1:]), np.float32)
    for j, i in enumerate(sessions):
        if has[i]:
            out[j] = label_prior(labels[i], confidence[i], positive[i])
    return torch.from_numpy(out).to(device)
