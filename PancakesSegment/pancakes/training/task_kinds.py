"""Development sets by task kind: figure/ground, coarse, fine parcels, small structures.

A dev mean over mostly fine parcels hid that the first model lost to a two-class Otsu
threshold on whole objects (issue 20). Each kind here is drawn from the DEV split only,
each of its sources getting an equal share, and relabelled with the same functions that
make the training mix (``granularity.py``), so "coarse" means the same in both.

Example::

    sets = kind_sets("figure_ground", S=3, n_sets=40, seed=3, part="test")
    for ts in sets:
        ts.dataset        # "figure_ground:mni_neuromorphometrics", ...
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .granularity import COARSE_RANGE, merge_labels
from .taskset import TaskSet

Transform = Optional[Callable[[TaskSet, np.random.Generator], Optional[TaskSet]]]


def _all_vs_background(task: TaskSet, rng: np.random.Generator) -> Optional[TaskSet]:
    """Every structure against the background: whole brain, whole labelled body."""
    from .granularity import _relabelled

    lut = np.zeros(int(task.labelmaps.max()) + 1, dtype=np.int64)
    lut[1:] = 1
    return _relabelled(task, lut, "figure_all")


def _coarse(task: TaskSet, rng: np.random.Generator) -> Optional[TaskSet]:
    groups = int(rng.integers(COARSE_RANGE[0], COARSE_RANGE[1] + 1))
    return merge_labels(task, rng, groups, spatial=True)


# kind -> [(dataset, protocol, transform)]: which dev labels make each kind.
KINDS: Dict[str, List[Tuple[str, str, Transform]]] = {
    "figure_ground": [("mni_neuromorphometrics", "neuromorphometrics", _all_vs_background),
                      ("totalseg_mr", "total_mr", _all_vs_background),
                      ("stardist_nuclei_2d", "nuclei", None)],
    "coarse": [("mni_neuromorphometrics", "neuromorphometrics", _coarse),
               ("totalseg_mr", "total_mr", _coarse)],
    "fine_parcels": [("mni_neuromorphometrics", "neuromorphometrics", None),
                     ("totalseg_mr", "total_mr", None)],
    "small": [("pyradiomics_lung_ct", "lesion", None),
              ("stardist_nuclei_2d", "instances", None)],
}

# Baselines named by the issue as the bar for a kind ("figure/ground: at least two-class Otsu").
OTSU_2 = "otsu (two classes)"


def kind_of(dataset: str) -> str:
    """'figure_ground:totalseg_mr' -> 'figure_ground' (rows of evaluate_methods carry both)."""
    return dataset.split(":", 1)[0]


def kind_sets(kind: str, S: int, n_sets: int, seed: int = 0, part: Optional[str] = "test",
              cache_dir: Optional[os.PathLike] = None, bank=None, distinct: bool = False) -> List[TaskSet]:
    """Up to ``n_sets`` deterministic sets of kind ``kind``, round-robin over its sources.

    Sources that cannot give S slices are left out; a draw whose relabelling fails is
    redrawn (up to 20 times). ``bank`` overrides the dev bank (tests pass a small one).
    Each set's ``dataset`` becomes "<kind>:<dataset>" so that rows group by both.
    ``distinct``: a draw that repeats a set of its source (same ``TaskSet.key``) is redrawn too, and a
    source that gives no new set in 20 draws gives no more: its turns go to the kind's other sources, so
    the kind still holds ``n_sets`` while any source has new sets (the test half's lung lesion spans 5
    slices: one set of 5, and the nuclei fill the small kind's other turns). A kind holds fewer only when
    all its sources are spent. False keeps the draws of earlier reports (no source leaves).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    if bank is None:
        from .real_data import dev_bank

        bank = dev_bank(part, cache_dir)
    sources = [(ds, proto, fn) for ds, proto, fn in KINDS[kind]
               if ds in bank.datasets and any(bank.dataset(ds).protocols[j] == proto
                                              for j, _ in bank.dataset(ds).viable(int(S)))]
    rng = np.random.default_rng(seed)
    out: List[TaskSet] = []
    seen: Dict[str, set] = {ds: set() for ds, _, _ in sources}
    live = list(sources)  # with ``distinct``, a source that gives no new set leaves; the others take its turns
    turn = 0
    while live and len(out) < n_sets and (distinct or turn < n_sets):
        ds, proto, fn = live[turn % len(live)]
        turn += 1
        for _ in range(20):
            ts = bank.sample_set(rng, S, dataset=ds, protocol=proto)
            if ts is not None and fn is not None:
                ts = fn(ts, rng)
            if ts is not None and distinct:
                key = ts.key()
                ts = None if key in seen[ds] else ts
                seen[ds].add(key)
            if ts is not None:
                ts.dataset = f"{kind}:{ds}"
                out.append(ts)
                break
        else:
            if distinct:
                live.remove((ds, proto, fn))
    return out


def all_kind_sets(S: int, n_sets: int, seed: int = 0, part: Optional[str] = "test",
                  cache_dir: Optional[os.PathLike] = None, bank=None, distinct: bool = False) -> List[TaskSet]:
    """Up to ``n_sets`` sets of every kind at S (so 4 x n_sets in all), seeded per kind; ``distinct`` as in kind_sets."""
    return [ts for i, kind in enumerate(KINDS)
            for ts in kind_sets(kind, S, n_sets, seed + 1000 * i, part, cache_dir, bank, distinct)]
