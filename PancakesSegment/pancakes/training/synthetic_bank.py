"""A bank of 3D synthetic label maps, built lazily and optionally cached on disk.

Building a 3D template takes ~0.1 s, far too slow for every training step, but
one template yields many different 2D sets (three axes, many slices, warps), so
a few dozen per process suffice. Template i depends only on (seed, i, size), so
any process, in any order, sees the same bank.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .synthetic_shapes import KINDS, make_template

# Bump when the shape code changes so stale caches are not reused.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """~/.cache/pancakes/synthetic (or $XDG_CACHE_HOME/pancakes/synthetic)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pancakes" / "synthetic"


class TemplateBank:
    """n_templates 3D label maps cycling through the shape kinds.

    Args:
        n_templates: number of templates; template i has kind KINDS[i % len(KINDS)].
        size: edge T of each [T, T, T] template.
        seed: bank seed.
        cache_dir: where to keep .npy copies; None keeps them in memory only.
    """

    def __init__(self, n_templates: int, size: int, seed: int, cache_dir: str | Path | None = None) -> None:
        if n_templates < 1:
            raise ValueError("need at least one template")
        self.n_templates = n_templates
        self.size = size
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._volumes: dict[int, np.ndarray] = {}

    def kind(self, i: int) -> str:
        return KINDS[i % len(KINDS)]

    def _path(self, i: int) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / f"v{CACHE_VERSION}_seed{self.seed}_t{self.size}_{i:04d}_{self.kind(i)}.npy"

    def get(self, i: int) -> np.ndarray:
        """Template i: uint8 [T, T, T], labels 0..L."""
        vol = self._volumes.get(i)
        if vol is not None:
            return vol
        if self.cache_dir is not None and self._path(i).exists():
            vol = np.load(self._path(i))
        else:
            rng = np.random.default_rng([self.seed, i, CACHE_VERSION])
            vol = make_template(self.kind(i), self.size, rng)
            if self.cache_dir is not None:
                self._save(i, vol)
        self._volumes[i] = vol
        return vol

    def _save(self, i: int, vol: np.ndarray) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename, so concurrent processes never read a partial file.
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, vol)
        os.replace(tmp, self._path(i))

    def warm(self) -> None:
        """Build (or load) every template now rather than on first use."""
        for i in range(self.n_templates):
            self.get(i)
