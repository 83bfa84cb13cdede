"""Training configuration: defaults follow the paper (§3.2), overridable from JSON or flags."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional, Tuple


@dataclass
class TrainConfig:
    # Sampling ranges of the paper: M in [5, 15], K in [5, 40], S in [2, 5].
    m_range: Tuple[int, int] = (5, 15)
    k_range: Tuple[int, int] = (5, 40)
    s_range: Tuple[int, int] = (2, 5)
    # Training resolutions and their probabilities: most steps at 64^2 are ~5x
    # cheaper than at 128^2 on CPU; some full-size steps keep the net calibrated
    # at the input size it ships with.
    sizes: List[int] = field(default_factory=lambda: [64, 96, 128])
    size_probs: List[float] = field(default_factory=lambda: [0.5, 0.3, 0.2])
    max_targets: int = 16  # labels per set used as targets, each with its own min (appendix D)
    alpha: float = 0.25  # weight of the per-target min vs the one-protocol-holds-all term
    beta: float = 0.5  # cross-entropy on the matched protocol (see training/loss.py)
    relax: float = 0.1  # relaxed winner-takes-all weight on a few random protocols per step
    n_relax: int = 2
    gamma: float = 0.1  # label-usage entropy weight against one label taking over
    # Cap that reward at the entropy of the set's T targets (loss.entropy_ceiling): without the cap a
    # figure/ground set (T = 2) is still pushed to use all K labels. False keeps the first model's loss.
    entropy_to_targets: bool = False
    # Train through the decode-time prototype adaptation (heads.DotProductHead.adapted_logits) at this
    # strength, so that the keys are shaped for the step the engine runs; 0 trains the plain decode.
    adapt: float = 0.0
    p_synthetic: float = 0.5  # share of sets drawn from the synthetic generator
    # Granularity mix (training/granularity.py): shares of sets relabelled as one object against
    # the rest, and merged into 2-5 super-labels. Without them every protocol learnt fine parcels
    # and lost to a two-class threshold on whole objects (issue 20). 0 and 0 train as drawn.
    p_figure: float = 0.2
    p_coarse: float = 0.25
    # Positions t_m <= coarse_zone of the protocols are kept for the relabelled (coarse) sets,
    # the rest for sets as drawn (granularity.zone_protocols); 0 lets every set win anywhere.
    coarse_zone: float = 0.0
    # Train the last protocol as the engine decodes it by default: its labels merged into figure and
    # ground by their queries (pancakes.coarse_protocol). It may then win only sets of at most two
    # targets; every other protocol stays free to learn fine parcels. False trains every protocol fine.
    coarse_train: bool = False
    # Share of sets given 1-3 small lesion-like blobs per image as one new label
    # (small_lesions.py): coarse targets had cost small structures. 0 trains without them.
    p_lesions: float = 0.0
    # Weight of a KL pull towards the starting network's label probabilities at every step
    # (training/distill.py): continuations had traded small structures for figure/ground. 0 trains
    # without it; the teacher is ``distill_from``, or the --init file when that is None.
    distill: float = 0.0
    distill_from: Optional[str] = None
    # Real datasets are drawn by weight, not uniformly: the paper samples datasets
    # uniformly, but here one source has 12 slices and would get a quarter of all sets.
    real_weights: dict = field(default_factory=lambda: {
        "mni_atlases": 0.4, "totalseg_ct": 0.35, "napari_nuclei_3d": 0.15, "pyradiomics_mr_lesions": 0.1})
    sets_per_step: int = 1  # the paper trains with one set per step
    lr: float = 1e-4
    lr_min: float = 1e-5  # cosine decay floor over `steps`
    weight_decay: float = 1e-4
    warmup: int = 200
    steps: int = 20000
    minutes: Optional[float] = None  # wall-clock budget; stops cleanly when spent
    eval_every: int = 1000
    ckpt_every: int = 250
    eval_sets: int = 24  # dev sets per S in the periodic evaluation
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    threads: int = 0  # torch CPU threads, 0 = torch's default
    # Architecture (paper: 4 levels, 32 features).
    features: int = 32
    levels: int = 4
    hidden: int = 64
    emb_half: int = 16
    # With --init: widen the file's UNet to this many features per level first, computing the same
    # protocols (pancakes.training.widen); 0 keeps the file's width. A wider network then starts
    # where the shipped one stands instead of from scratch.
    widen_features: int = 0
    synthetic_templates: int = 32

    @classmethod
    def from_json(cls, path: Path, **overrides) -> "TrainConfig":
        data = json.loads(Path(path).read_text())
        return cls.from_dict({**data, **overrides})

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}")
        cfg = cls(**{k: (tuple(v) if k.endswith("_range") else v) for k, v in data.items()})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("m_range", "k_range", "s_range"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"config: {name}={lo, hi} must satisfy 1 <= low <= high")
        if len(self.sizes) != len(self.size_probs) or any(s % 8 for s in self.sizes):
            raise ValueError("config: sizes must be multiples of 8, one probability each")
        if not self.adapt >= 0:
            raise ValueError(f"config: adapt={self.adapt} must be >= 0")
        if not (0 <= self.p_figure and 0 <= self.p_coarse and self.p_figure + self.p_coarse <= 1):
            raise ValueError("config: p_figure and p_coarse must be >= 0 with a sum of at most 1")
        if not self.distill >= 0:
            raise ValueError(f"config: distill={self.distill} must be >= 0")
        if not 0 <= self.p_lesions <= 1:
            raise ValueError(f"config: p_lesions={self.p_lesions} must lie in [0, 1]")
        if not 0 <= self.coarse_zone < 1:
            raise ValueError(f"config: coarse_zone={self.coarse_zone} must lie in [0, 1)")
        if not 0 <= self.alpha <= 1 or not 0 <= self.p_synthetic <= 1:
            raise ValueError("config: alpha and p_synthetic must lie in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)
