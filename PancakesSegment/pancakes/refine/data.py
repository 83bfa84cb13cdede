"""Training examples for the refiner: one image, its label map and one target label.

Drawn from the same sources as the protocol model (the synthetic generator and the
real TRAIN bank; never the DEV split), with cheap per-example augmentation: flips,
90-degree turns, gamma and noise. Targets are any label with at least MIN_PIXELS
pixels, not only the set's own label, so small and large structures both appear.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

MIN_PIXELS = 16


@dataclass
class Example:
    """image float32 [H, W] in [0, 1]; labelmap int [H, W]; target bool [H, W]."""

    image: np.ndarray
    labelmap: np.ndarray
    target: np.ndarray
    source: str


class ExampleSource:
    """Mixes synthetic and real examples; ``real`` None means synthetic only."""

    def __init__(self, synthetic, real=None, p_synthetic: float = 0.5) -> None:
        self.synthetic = synthetic
        self.real = real
        self.p_synthetic = p_synthetic if real is not None else 1.0

    @classmethod
    def default(cls, synthetic_only: bool = False, n_templates: int = 32, log=print) -> "ExampleSource":
        """The synthetic generator on the shared template cache, plus the real TRAIN bank if present."""
        from ..training.synthetic import SyntheticGenerator
        from ..training.synthetic_bank import default_cache_dir

        gen = SyntheticGenerator(size=128, n_templates=n_templates, seed=0, cache_dir=default_cache_dir())
        real = None
        if not synthetic_only:
            from ..training.real_data import DataUnavailableError, load_bank

            try:
                real = load_bank("train", build=False)
            except DataUnavailableError as exc:
                log(f"[refine] real TRAIN bank unavailable ({exc}); synthetic only")
        return cls(gen, real)

    def draw(self, rng: np.random.Generator) -> Example:
        for _ in range(20):
            synthetic = rng.random() < self.p_synthetic
            ts = (self.synthetic if synthetic else self.real).sample_set(rng, 1)
            if ts is None:
                continue
            ex = self._pick_target(ts.images[0], ts.labelmaps[0], rng, ts.dataset)
            if ex is not None:
                return augment(ex, rng)
        raise RuntimeError("no example with a target of at least MIN_PIXELS pixels in 20 draws")

    @staticmethod
    def _pick_target(image: np.ndarray, labelmap: np.ndarray, rng: np.random.Generator,
                     source: str) -> Optional[Example]:
        counts = np.bincount(labelmap.ravel().astype(np.int64))
        values = np.flatnonzero(counts >= MIN_PIXELS)
        values = values[values > 0]
        if values.size == 0:
            return None
        v = int(values[rng.integers(values.size)])
        return Example(image.astype(np.float32), labelmap, labelmap == v, source)


def augment(ex: Example, rng: np.random.Generator) -> Example:
    """Same random flip and 90-degree turn for image and labels; gamma and noise on the image."""
    k = int(rng.integers(4))
    flip = rng.random() < 0.5

    def geo(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k)
        return np.ascontiguousarray(a[:, ::-1] if flip else a)

    image = np.clip(geo(ex.image), 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.3:
        image = np.clip(image + rng.normal(0, rng.uniform(0.01, 0.05), image.shape), 0.0, 1.0)
    return Example(image.astype(np.float32), geo(ex.labelmap), geo(ex.target), ex.source)
