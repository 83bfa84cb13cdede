"""The training data mix: synthetic sets and real sets, one sampler."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def mixed_sampler(synthetic, real, p_synthetic: float, log: Callable[[str], None] = print) -> Callable:
    """-> sample_set(rng, S) drawing from ``synthetic`` with probability p_synthetic, else ``real``.

    With no real bank (cache not fetched) training falls back to synthetic
    sets only, and says so, rather than failing.
    """
    if real is None:
        log("real data unavailable: training on synthetic sets only")

    def sample_set(rng: np.random.Generator, S: int):
        if real is None or rng.random() < p_synthetic:
            return synthetic.sample_set(rng, S)
        return real.sample_set(rng, S)

    return sample_set


def load_real_bank(log: Callable[[str], None] = print, cache_dir: Optional[str] = None):
    """The training split of the real slice bank, or None with a message when absent."""
    from .real_data import DataUnavailableError, load_bank

    try:
        return load_bank("train", cache_dir=cache_dir)
    except DataUnavailableError as exc:
        log(f"warning: {exc}")
        return None
