"""Summaries of click curves (Dice after 0..C clicks) and how far they can be trusted.

The refinement benchmark compares two starts on the same images. Its headline
figures (the click at which each mean curve plateaus, the first click's gain) come
from about 40 sets, so a one-click difference in plateau may be chance; the
bootstrap here resamples whole sets (images of a set are not independent) and
scores both starts on the same draw.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np


def plateau_clicks(curve: np.ndarray, frac: float = 0.95) -> int:
    """curve [C + 1] mean Dice -> first click count reaching ``frac`` of its final gain over its start."""
    goal = curve[0] + frac * (curve.max() - curve[0])
    return int(np.flatnonzero(curve >= goal - 1e-12)[0])


def clicks_to_reach(curve: np.ndarray, level: float) -> Optional[int]:
    """curve [C + 1] mean Dice -> first click count at which it reaches ``level`` (None: never).

    The paper's form of the half-the-clicks claim: from the Pancakes seed, the clicks
    needed to "reach the same results" as the empty start at its plateau, i.e.
    clicks_to_reach(seeded, empty[plateau_clicks(empty)]).
    """
    hit = np.flatnonzero(curve >= level - 1e-12)
    return int(hit[0]) if hit.size else None


def empty_clicks_worth(level: float, empty: np.ndarray) -> Optional[float]:
    """The clicks an empty start needs for mean Dice ``level``: empty [C + 1] mean curve, read between
    its clicks as a straight line -> fractional clicks (None: the curve never gets there).

    Why: "half the clicks" (issue 21) asks the seeded start to be level at its 3rd click with the
    empty start at its 6th, i.e. to be worth 3 clicks there; this says how many it is worth now:
    empty_clicks_worth(seeded[n], empty) - n.
    """
    e = np.asarray(empty, dtype=np.float64)
    if level <= e[0] + 1e-12:  # the same tolerance as the search below, so the crossing is after click 0
        return 0.0
    hit = np.flatnonzero(e >= level - 1e-12)
    if not hit.size:
        return None
    c = int(hit[0])
    # e[c - 1] < level <= e[c]: the crossing lies on the segment between clicks c - 1 and c.
    return float(c - 1 + (level - e[c - 1]) / (e[c] - e[c - 1]))


def noc(curves: np.ndarray, level: float) -> float:
    """curves [N, C + 1] -> mean clicks to reach Dice >= level (never reached counts as C)."""
    reached = curves >= level
    first = np.where(reached.any(1), reached.argmax(1), curves.shape[1] - 1)
    return float(first.mean())


def bootstrap_click_stats(seeded: np.ndarray, empty: np.ndarray, groups: Sequence[int], n_boot: int = 2000,
                          seed: int = 0, level: float = 0.95) -> Dict[str, Tuple[float, float]]:
    """Paired set-level bootstrap of the benchmark's targets.

    seeded, empty: [N, C + 1] Dice curves of the same N images from the two starts;
    groups: [N] set id of each image (sets are resampled whole).
    Returns intervals for "plateau seeded", "plateau empty", "first click gain seeded" (Dice
    points), "seeded reaches empty plateau" (clicks_to_reach; never counts as C + 1) and, as
    (share, share), "half the clicks": the share of draws in which the seeded plateau comes
    at no more than half the empty one, and "half the clicks (reach)": the same for the
    clicks the seeded start needs to reach the empty plateau's Dice.
    """
    groups = np.asarray(groups)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    rng = np.random.default_rng(seed)
    stats = {"plateau seeded": [], "plateau empty": [], "first click gain seeded": [],
             "seeded reaches empty plateau": [], "half": [], "half (reach)": []}
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        a, b = seeded[idx].mean(0), empty[idx].mean(0)
        pa, pb = plateau_clicks(a), plateau_clicks(b)
        stats["plateau seeded"].append(pa)
        stats["plateau empty"].append(pb)
        stats["first click gain seeded"].append(100 * (a[1] - a[0]))
        stats["half"].append(pa <= pb / 2)
        reach = clicks_to_reach(a, b[pb])
        reach = len(a) if reach is None else reach
        stats["seeded reaches empty plateau"].append(reach)
        stats["half (reach)"].append(reach <= pb / 2)
    tail = (1 - level) / 2 * 100
    out = {k: tuple(float(x) for x in np.percentile(v, [tail, 100 - tail]))
           for k, v in stats.items() if not k.startswith("half")}
    for key, name in (("half", "half the clicks"), ("half (reach)", "half the clicks (reach)")):
        share = float(np.mean(stats[key]))
        out[name] = (share, share)
    return out
