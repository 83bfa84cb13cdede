"""Bootstrap intervals for development Set Dice and its S=5 / S=1 ratio.

With 40 sets per S spread over four dev datasets, each dataset mean rests on about
ten sets, and one dataset's S=3 figure can sit far below its S=5 figure by chance.
Resampling the sets shows how far a figure (and the ratio the issue targets) can
move before two models, or two S, differ for real.

A source with few slices of a structure gives the same set more than once (the test half's lung
lesion gives one distinct set of 5 slices, drawn 20 times). Resampling each drawn set on its own
would count those repeats as independent evidence and narrow the interval for nothing, so rows
that carry their sets' keys are resampled by distinct set (a cluster bootstrap: a distinct set
comes with all its repeats, so each keeps the weight it has in the mean).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np

Interval = Tuple[float, float]


def _scores(rows: List[dict], method: str, key: str) -> Dict[int, Dict[str, np.ndarray]]:
    """S -> dataset -> per-set scores of one method."""
    by_s: Dict[int, Dict[str, np.ndarray]] = defaultdict(dict)
    for r in rows:
        if r["method"] == method:
            by_s[r["S"]][r["dataset"]] = np.asarray(r[key], dtype=float)
    if not by_s:
        raise ValueError(f"no rows for method {method!r}")
    return by_s


def _set_counts(by_s: Dict[int, Dict[str, np.ndarray]]) -> Dict[Tuple[int, str], int]:
    """(S, dataset) -> number of sets: equal for two methods scored on the same draw."""
    return {(S, ds): len(v) for S, draws in by_s.items() for ds, v in draws.items()}


def _clusters(rows: List[dict], method: str) -> Dict[Tuple[int, str], np.ndarray]:
    """(S, dataset) -> int [n_sets]: which distinct set each drawn set is (its position without "keys")."""
    out = {}
    for r in rows:
        if r["method"] == method:
            keys = r.get("keys")
            if keys is None or len(keys) != len(r["scores"]):
                out[r["S"], r["dataset"]] = np.arange(len(r["scores"]))
            else:
                out[r["S"], r["dataset"]] = np.unique(np.asarray(keys), return_inverse=True)[1].reshape(-1)
    return out


def _boot_means(by_s: Dict[int, Dict[str, np.ndarray]], clusters: Dict[Tuple[int, str], np.ndarray],
                indices: Dict[Tuple[int, str], np.ndarray]) -> Dict[int, np.ndarray]:
    """S -> [n_boot] dataset-weighted means of the distinct sets picked by ``indices`` [n_boot, n_distinct],
    each with all its repeats (``clusters`` maps drawn sets to distinct ones)."""
    means = {}
    for S, draws in by_s.items():
        per_ds = []
        for ds, scores in draws.items():
            inv = clusters[S, ds]
            sums, counts = np.bincount(inv, weights=scores), np.bincount(inv)
            idx = indices[S, ds]
            per_ds.append(sums[idx].sum(1) / counts[idx].sum(1))
        means[S] = np.mean(per_ds, axis=0)
    return means


def bootstrap_intervals(rows: List[dict], method: str, key: str = "scores", n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0, ratio: Tuple[int, int] = (5, 1),
                        minus: Optional[str] = None) -> Dict[object, Interval]:
    """Percentile intervals for one method's dataset-mean Set Dice at each S, and for the ratio.

    ``rows`` are those of ``evaluate.evaluate_methods`` (one per method, S and dataset, with the
    per-set scores under ``key``). Distinct sets (by the rows' "keys") are resampled with replacement
    within each dataset, so each dataset keeps its weight, and independently per S, since each S draws
    its own sets. A dataset with one distinct set contributes no spread: see ``few_distinct``.
    Returns {S: (lo, hi), ..., "ratio": (lo, hi)} where "ratio" is S=ratio[0] over S=ratio[1]
    (absent when either S was not evaluated).

    With ``minus`` (another method scored on the same sets, in the same order) the intervals are
    for the difference ``method - minus``, both resampled with the same sets (a paired bootstrap):
    an interval above 0 says ``method`` is better on sets like these, not only on these.
    """
    by_s = _scores(rows, method, key)
    clusters = _clusters(rows, method)
    rng = np.random.default_rng(seed)
    indices = {}
    for S, draws in sorted(by_s.items()):
        for ds in sorted(draws):
            n = int(clusters[S, ds].max()) + 1 if len(clusters[S, ds]) else 0
            indices[S, ds] = rng.integers(0, n, size=(n_boot, n))
    boot = _boot_means(by_s, clusters, indices)
    num, den = ratio
    ratios = boot[num] / boot[den] if num in boot and den in boot else None
    if minus is not None:
        other = _scores(rows, minus, key)
        if _set_counts(other) != _set_counts(by_s):
            raise ValueError(f"{method!r} and {minus!r} were not scored on the same sets")
        base = _boot_means(other, clusters, indices)
        if ratios is not None:
            ratios = ratios - base[num] / base[den]
        boot = {S: boot[S] - base[S] for S in boot}
    tail = (1 - level) / 2 * 100
    out: Dict[object, Interval] = {S: _percentiles(v, tail) for S, v in boot.items()}
    if ratios is not None:
        out["ratio"] = _percentiles(ratios, tail)
    return out


# Below this many distinct sets, a dataset's figure at one S is called out in the reports: its
# spread is barely estimated (one distinct set gives none at all).
FEW_DISTINCT = 5


def few_distinct(rows: List[dict], method: str, below: int = FEW_DISTINCT) -> List[Tuple[int, str, int, int]]:
    """(S, dataset, distinct sets, drawn sets) of ``method``'s rows that rest on fewer than ``below``
    distinct sets, sorted; rows without "keys" count every drawn set as distinct."""
    out = []
    for r in rows:
        if r["method"] == method:
            distinct = r.get("distinct", len(r["scores"]))
            if distinct < below:
                out.append((r["S"], r["dataset"], int(distinct), len(r["scores"])))
    return sorted(out)


def _percentiles(values: np.ndarray, tail: float) -> Interval:
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def format_intervals(rows: List[dict], methods: List[str], S_values: List[int],
                     n_boot: int = 2000, seed: int = 0) -> str:
    """Markdown table of 95% intervals per method, then of each later method minus the first
    (paired, same sets)."""
    head = "| method | " + " | ".join(f"S={s}" for s in S_values) + " | S=5 / S=1 |"
    lines = ["95% bootstrap intervals (distinct sets resampled within each dataset, "
             f"{n_boot} draws)", "", head, "|---|" + "---|" * (len(S_values) + 1)]
    for m in methods:
        iv = bootstrap_intervals(rows, m, n_boot=n_boot, seed=seed)
        cells = [f"{iv[s][0]:.3f} to {iv[s][1]:.3f}" if s in iv else "-" for s in S_values]
        r = iv.get("ratio")
        cells.append(f"{r[0]:.2f} to {r[1]:.2f}" if r else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for m in methods[1:]:  # the others against the first, on the same sets
        iv = bootstrap_intervals(rows, m, n_boot=n_boot, seed=seed, minus=methods[0])
        cells = [f"{iv[s][0]:+.3f} to {iv[s][1]:+.3f}" if s in iv else "-" for s in S_values]
        r = iv.get("ratio")
        cells.append(f"{r[0]:+.2f} to {r[1]:+.2f}" if r else "-")
        lines.append(f"| {m} minus {methods[0]} (paired) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
