"""Training examples for the refiner: one image, its label map and one target label.

Drawn from the same sources as the protocol model (the synthetic generator and the
real TRAIN bank; never the DEV split), with cheap per-example augmentation: flips,
90-degree turns, gamma and noise. Targets are any label with at least MIN_PIXELS
pixels, not only the set's own label, so small and large structures both appear.

``PancakesSeedPool`` pairs such examples with the best label the protocol model
(pancakes.pt) gives their image, computed in batches and each used a few times; with ``core``
the seed is that label's confident core, as the product seeds a kept label (pancakes.refine.seed_core).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .seeds import best_label_cores, best_label_seeds

MIN_PIXELS = 16
REAL_SHARE = 0.5  # share of examples from the real TRAIN bank, when it is there (--real-share)


@dataclass
class Example:
    """image float32 [H, W] in [0, 1]; labelmap int [H, W]; target bool [H, W]."""

    image: np.ndarray
    labelmap: np.ndarray
    target: np.ndarray
    source: str


class ExampleSource:
    """Mixes synthetic and real examples; ``real`` None means synthetic only."""

    def __init__(self, synthetic, real=None, p_synthetic: float = 1.0 - REAL_SHARE) -> None:
        self.synthetic = synthetic
        self.real = real
        self.p_synthetic = p_synthetic if real is not None else 1.0

    @classmethod
    def default(cls, synthetic_only: bool = False, n_templates: int = 32, log=print,
                real_share: float = REAL_SHARE) -> "ExampleSource":
        """The synthetic generator on the shared template cache, plus the real TRAIN bank if present,
        drawn for a ``real_share`` of the examples."""
        from ..synthetic import SyntheticGenerator
        from ..synthetic_bank import default_cache_dir

        gen = SyntheticGenerator(size=128, n_templates=n_templates, seed=0, cache_dir=default_cache_dir())
        real = None
        if not synthetic_only:
            from ..real_data import DataUnavailableError, load_bank

            try:
                real = load_bank("train", build=False)
            except DataUnavailableError as exc:
                log(f"[refine] real TRAIN bank unavailable ({exc}); synthetic only")
        return cls(gen, real, p_synthetic=1.0 - real_share)

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

    def draw_many(self, rng: np.random.Generator, n: int) -> List[Example]:
        """n examples in a row (pancakes.training.refine.parallel.SessionWorkers draws them in parallel)."""
        return [self.draw(rng) for _ in range(n)]

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


class PancakesSeedPool:
    """Training examples with a real Pancakes seed: the best (m, k) label for their target.

    ``source`` is an ExampleSource or SessionWorkers (anything with ``draw_many``);
    ``model`` is a pancakes.Pancakes engine (the shipped protocol model in training,
    a random one in tests). The model runs on the already augmented image, so seed and
    image agree. It costs about 25 ms per image on one CPU thread, so the pool is
    refilled ``size // 2`` examples at a time (one batched segment call) and each
    example is used ``uses`` times before it is dropped; with ``uses`` 2 an iteration
    that takes 4 Pancakes seeds pays for 2 new images.

    ``core`` (a probability in (0, 1], None: off) keeps only the pixels where the picked label's
    probability reaches it (pancakes.refine.seed_core.label_core): the seed the product gives a
    kept label, so that training starts where the panel's sessions start. ``with_prior`` (needs ``core``)
    also keeps the picked protocol's (labels, confidence), and ``take`` then gives (example, seed, prior)
    triples: what pancakes.refine.label_prior reads in the panel's sessions.
    """

    def __init__(self, source: ExampleSource, model, size: int = 32, uses: int = 2,
                 protocols: int = 8, labels: int = 20, core: Optional[float] = None, with_prior: bool = False) -> None:
        if size < 2 or uses < 1:
            raise ValueError(f"size must be >= 2 and uses >= 1, got {size}, {uses}")
        if core is not None and not 0.0 < core <= 1.0:
            raise ValueError(f"core must be a probability in (0, 1] or None, got {core}")
        if with_prior and core is None:
            raise ValueError("with_prior needs core: the label prior comes from the same decode as the core")
        self.with_prior = with_prior
        self.source, self.model = source, model
        self.size, self.uses, self.core = size, uses, core
        self.protocols, self.labels = protocols, labels
        self.entries: List[list] = []  # [Example, seed bool [H, W], Dice of the seed, uses left, prior or None]
        self.segmented = 0

    def refill(self, rng: np.random.Generator) -> None:
        """Top the pool up to ``size`` examples with one batched Pancakes run."""
        need = self.size - len(self.entries)
        if need <= 0:
            return
        exs = self.source.draw_many(rng, need)
        seeds, dices, priors = self._seeds(np.stack([e.image for e in exs]), np.stack([e.target for e in exs]))
        self.entries += [[e, s, float(d), self.uses, None if priors is None else (priors[0][i], priors[1][i])]
                         for i, (e, s, d) in enumerate(zip(exs, seeds, dices))]
        self.segmented += need

    def _seeds(self, images: np.ndarray, targets: np.ndarray):
        """images float32 [N, S, S], targets bool [N, S, S] -> seeds bool [N, S, S], the picked label's Dice [N],
        and with ``with_prior`` the picked protocol's (labels [N, S, S], confidence [N, S, S]), else None."""
        if self.core is None:
            seeds, dices = best_label_seeds(self.model.segment(images, self.protocols, self.labels), targets,
                                            K=self.labels)
            return seeds, dices, None
        probs = self.model.probabilities(self.model.encode(images), self.protocols, self.labels)  # [M, K, S, S] each
        _, dices, cores, priors = best_label_cores(probs, targets, K=self.labels, threshold=self.core, with_prior=True)
        return cores, dices, priors if self.with_prior else None

    def take(self, rng: np.random.Generator, n: int) -> list:
        """n distinct (example, seed) pairs, (example, seed, prior) triples ``with_prior``; refills when fewer than
        half the pool is left."""
        out: list = []
        while len(out) < n:
            if len(self.entries) <= self.size // 2:
                self.refill(rng)
            k = min(n - len(out), len(self.entries))
            picked = sorted(rng.choice(len(self.entries), size=k, replace=False).tolist(), reverse=True)
            for i in picked:
                entry = self.entries[i]
                out.append((entry[0], entry[1], entry[4]) if self.with_prior else (entry[0], entry[1]))
                entry[3] -= 1
                if entry[3] <= 0:
                    del self.entries[i]  # descending indices: deleting keeps the others valid
        return out
