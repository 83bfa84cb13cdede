"""The development report by task kind: each kind with its baselines, diagnostics and
paired intervals, and the issue's targets checked against the figures.

Input rows are those of ``evaluate.evaluate_methods`` on sets from ``task_kinds`` (their
dataset is "<kind>:<source>"). Within a kind, every source weighs the same.

Example::

    text = format_kind_report(rows, [1, 2, 3, 5], models=["pancakes", "pancakes (v2)"])
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .intervals import FEW_DISTINCT, bootstrap_intervals, few_distinct
from .task_kinds import KINDS, OTSU_2, kind_of


def _rows_of(rows: List[dict], kind: str) -> List[dict]:
    return [r for r in rows if kind_of(r["dataset"]) == kind]


def _means(rows: List[dict], method: str, key: str = "set_dice") -> Dict[int, float]:
    by_s: Dict[int, list] = {}
    for r in rows:
        if r["method"] == method:
            by_s.setdefault(r["S"], []).append(r[key])
    return {s: float(np.mean(v)) for s, v in by_s.items()}


def _methods(rows: List[dict]) -> List[str]:
    return list(dict.fromkeys(r["method"] for r in rows))


def _best_baseline(rows: List[dict], models: Sequence[str], S: int) -> tuple:
    """(name, Set Dice) of the best non-model, non-trivial method at S."""
    best = ("-", float("nan"))
    for m in _methods(rows):
        if m in models or m.startswith("trivial"):
            continue
        v = _means(rows, m).get(S)
        if v is not None and not best[1] >= v:
            best = (m, v)
    return best


def format_kind_report(rows: List[dict], S_values: Sequence[int], models: Sequence[str],
                       n_boot: int = 2000, seed: int = 0) -> str:
    """Markdown: one section per kind (Set Dice per method and S, labels per protocol, largest
    share; intervals of the models and of each later model minus the first, paired), then a
    summary of the kinds against their best baselines and the overall mean."""
    out: List[str] = []
    heads = " | ".join(f"S={s}" for s in S_values)
    for kind in KINDS:
        krows = _rows_of(rows, kind)
        if not krows:
            continue
        sources = sorted({r["dataset"].split(":", 1)[1] for r in krows})
        first = [r for r in krows if r["method"] == models[0]]
        n = {s: sum(r["n"] for r in first if r["S"] == s) for s in S_values}
        distinct = {s: sum(r.get("distinct", r["n"]) for r in first if r["S"] == s) for s in S_values}
        out += [f"### {kind} ({', '.join(sources)}; sets per S: "
                + ", ".join(f"{n[s]}" for s in S_values) + "; distinct: "
                + ", ".join(f"{distinct[s]}" for s in S_values) + ")", "",
                f"| method | {heads} | labels / protocol | largest share |",
                "|---|" + "---|" * (len(S_values) + 2)]
        for m in _methods(krows):
            v = _means(krows, m)
            lp = np.mean([r["labels_per_protocol"] for r in krows if r["method"] == m])
            ls = np.mean([r["largest_share"] for r in krows if r["method"] == m])
            name = f"**{m}**" if m in models else m
            out.append(f"| {name} | " + " | ".join(f"{v.get(s, float('nan')):.3f}" for s in S_values)
                       + f" | {lp:.1f} | {ls:.2f} |")
        if n_boot:
            out += ["", f"95% intervals ({n_boot} bootstrap draws, distinct sets resampled within each source)", "",
                    f"| model | {heads} |", "|---|" + "---|" * len(S_values)]
            for m in models:
                iv = bootstrap_intervals(krows, m, n_boot=n_boot, seed=seed)
                out.append(f"| {m} | " + " | ".join(f"{iv[s][0]:.3f} to {iv[s][1]:.3f}" for s in S_values) + " |")
            for m in models[1:]:
                iv = bootstrap_intervals(krows, m, n_boot=n_boot, seed=seed, minus=models[0])
                out.append(f"| {m} minus {models[0]} (paired) | "
                           + " | ".join(f"{iv[s][0]:+.3f} to {iv[s][1]:+.3f}" for s in S_values) + " |")
        thin = [t for t in few_distinct(krows, models[0]) if t[0] in S_values]
        if thin:
            out += ["", f"Fewer than {FEW_DISTINCT} distinct sets (the same slices drawn again; their spread is not "
                    "in the intervals): " + "; ".join(f"{ds.split(':', 1)[1]} at S={S}, {d} of {n}"
                                                     for S, ds, d, n in thin)]
        out.append("")
    out += summary_against_targets(rows, S_values, models)
    return "\n".join(out)


def summary_against_targets(rows: List[dict], S_values: Sequence[int], models: Sequence[str]) -> List[str]:
    """Per model: each kind's margin over its best baseline (and over two-class Otsu for
    figure/ground), the mean over kinds, and S=5 / S=1."""
    heads = " | ".join(f"S={s}" for s in S_values)
    out = ["### Against the targets (model minus the kind's best baseline at each S)", "",
           f"| model | kind | {heads} |", "|---|---|" + "---|" * len(S_values)]
    if all(_best_baseline(_rows_of(rows, k), models, s)[0] == "-" for k in KINDS for s in S_values):
        # A run with --no-baselines (checkpoint choice) has nothing to measure against.
        out[2:] = ["no baselines in these rows (--no-baselines): no margins to show"]
        models = []
    for m in models:
        for kind in KINDS:
            krows = _rows_of(rows, kind)
            if not krows:
                continue
            v = _means(krows, m)
            cells = []
            for s in S_values:
                name, b = _best_baseline(krows, models, s)
                cells.append(f"{v.get(s, float('nan')) - b:+.3f} ({name})")
            out.append(f"| {m} | {kind} | " + " | ".join(cells) + " |")
            if kind == "figure_ground" and any(r["method"] == OTSU_2 for r in krows):
                o = _means(krows, OTSU_2)
                out.append(f"| {m} | figure_ground vs {OTSU_2} | "
                           + " | ".join(f"{v.get(s, float('nan')) - o.get(s, float('nan')):+.3f}"
                                        for s in S_values) + " |")
    out += ["", f"| method | {heads} | S=5 / S=1 |", "|---|" + "---|" * (len(S_values) + 1)]
    for m in _methods(rows):
        per_kind = [_means(_rows_of(rows, k), m) for k in KINDS if _rows_of(rows, k)]
        mean = {s: float(np.mean([pk[s] for pk in per_kind if s in pk])) for s in S_values}
        ratio = mean[5] / mean[1] if 5 in mean and 1 in mean and mean[1] else float("nan")
        out.append(f"| {m} (mean over kinds) | " + " | ".join(f"{mean[s]:.3f}" for s in S_values)
                   + f" | {ratio:.2f} |")
    return out
