"""The training data mix: synthetic sets and real sets, one sampler."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def mixed_sampler(synthetic, real, p_synthetic: float, log: Callable[[str], None] = print,
                  real_weights: Optional[dict] = None) -> Callable:
    """-> sample_set(rng, S) drawing from ``synthetic`` with probability p_synthetic, else ``real``.

    Real datasets are chosen by ``real_weights`` (missing ones get the mean weight).

    With no real bank (cache not fetched) training falls back to synthetic
    sets only, and says so, rather than failing.
    """
    if real is None:
        log("real data unavailable: training on synthetic sets only")
        names, probs = [], None
    else:
        names = list(real.datasets)
        w = dict(real_weights or {})
        default = float(np.mean(list(w.values()))) if w else 1.0
        probs = np.array([w.get(n, default) for n in names], dtype=float)
        probs /= probs.sum()
        log("real datasets: " + ", ".join(f"{n} {p:.2f}" for n, p in zip(names, probs)))

    def sample_set(rng: np.random.Generator, S: int):
        if real is None or rng.random() < p_synthetic:
            return synthetic.sample_set(rng, S)
        return real.sample_set(rng, S, dataset=names[int(rng.choice(len(names), p=probs))])

    return sample_set


def load_real_bank(log: Callable[[str], None] = print, cache_dir: Optional[str] = None):
    """The training split of the real slice bank, or None with a message when absent."""
    from .real_data import DataUnavailableError, load_bank

    try:
        return load_bank("train", cache_dir=cache_dir)
    except DataUnavailableError as exc:
        log(f"warning: {exc}")
        return None
