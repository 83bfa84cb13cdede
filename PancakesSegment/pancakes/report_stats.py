"""Quality control for report.html: label volumes across subjects, outliers by robust z-score, and their plots.

A robust z-score uses the median and the median absolute deviation (MAD) instead of the
mean and standard deviation, so one wild subject cannot hide itself by inflating the
spread: z = 0.6745 (x - median) / MAD, flagged when |z| > 3.5 (Iglewicz and Hoaglin).
When more than half the subjects share one volume the MAD is 0; the mean absolute deviation
stands in then (z = (x - median) / (1.2533 MeanAD), the usual fallback), so the odd one out is
still flagged and identical subjects never are.

Usage::

    table = volume_table(done, M, K)                 # {(m, k): {subject: mm3}}
    flagged = outliers(table)                        # [Outlier(m, k, subject, volume, z)]
    png = protocol_plot(table, m, M, K, flagged)     # PNG bytes: a box + strip plot per label
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from . import protocols
from .label_volumes import volume_rows

Z_LIMIT = 3.5
_MAD_TO_SIGMA = 0.6745  # MAD of a normal distribution is 0.6745 sigma
_MEANAD_TO_SIGMA = 1.253314  # sigma / mean absolute deviation of a normal distribution (sqrt(pi/2))
Table = Dict[Tuple[int, int], Dict[str, float]]


@dataclass(frozen=True)
class Outlier:
    m: int  # 0-based protocol
    k: int  # 0-based label
    subject: str
    volume_mm3: float
    z: float


def volume_table(done: Sequence[Tuple[str, Dict]], M: int, K: int) -> Table:
    """{(m, k): {subject: volume in mm3}} from finished subjects' markers (counts, voxel_mm3)."""
    table: Table = {(m, k): {} for m in range(M) for k in range(K)}
    for name, marker in done:
        for row in volume_rows(name, marker["counts"], marker["voxel_mm3"], M, K):
            table[(row["protocol"] - 1, row["label"] - 1)][name] = float(row["volume_mm3"])
    return table


def robust_z(values: Sequence[float]) -> np.ndarray:
    """Robust z-scores of ``values``; all zeros when every value is the median."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return x
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    if mad > 0:
        return _MAD_TO_SIGMA * (x - median) / mad
    mean_ad = np.mean(np.abs(x - median))
    return (x - median) / (_MEANAD_TO_SIGMA * mean_ad) if mean_ad > 0 else np.zeros_like(x)


def outliers(table: Table, limit: float = Z_LIMIT) -> List[Outlier]:
    """Subjects whose volume of a label is far from the others' (|robust z| > limit), by protocol and label."""
    found = []
    for (m, k), by_subject in sorted(table.items()):
        names = list(by_subject)
        for name, z in zip(names, robust_z([by_subject[n] for n in names])):
            if abs(z) > limit:
                found.append(Outlier(m, k, name, by_subject[name], float(z)))
    return found


def protocol_plot(table: Table, m: int, M: int, K: int, flagged: Sequence[Outlier] = ()) -> bytes:
    """PNG of protocol m: per label, a box plot of volumes across subjects with every subject as a
    jittered dot in the label's colour; outliers ringed in black."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(max(6.0, 0.45 * K + 2), 3.4), dpi=100)
    ax = fig.add_subplot()
    data = [list(table[(m, k)].values()) for k in range(K)]
    ax.boxplot(data, positions=range(1, K + 1), widths=0.6, showfliers=False, medianprops={"color": "black"})
    rng = np.random.default_rng(m)  # fixed jitter: the same OUT gives the same picture
    ringed = {(o.k, o.subject) for o in flagged if o.m == m}
    xs, ys, colours, ring = [], [], [], []
    for k in range(K):
        names = list(table[(m, k)])
        xs.append(k + 1 + rng.uniform(-0.18, 0.18, len(names)))
        ys.append(np.array([table[(m, k)][n] for n in names], dtype=float))
        colours += [np.array(protocols.colour(M, K, m, k)) / 255.0] * len(names)
        ring += [(k, n) in ringed for n in names]
    # One scatter for all labels (K calls took most of the plot's time), then the rings on top.
    x, y, ring = np.concatenate(xs), np.concatenate(ys), np.array(ring, dtype=bool)
    ax.scatter(x, y, s=12, c=np.array(colours).reshape(-1, 3), edgecolors="none", zorder=3)
    if ring.any():
        ax.scatter(x[ring], y[ring], s=60, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
    ax.set_xticks(range(1, K + 1), [f"L{k + 1:02d}" for k in range(K)], fontsize=7, rotation=90 if K > 30 else 0)
    ax.set_ylabel("volume (mm³)")
    ax.set_title(protocols.protocol_name(M, K, m), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
