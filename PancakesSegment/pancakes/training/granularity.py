"""Relabel a set at another granularity: figure/ground and coarse super-labels.

Why: the fine-parcel training mix taught protocols that split every large structure,
so no protocol offered a whole object (a brain against its background, nuclei against
the medium) and a two-class Otsu threshold beat the model on such tasks (issue 20).
Merging the labels of a set into a few super-labels, or into one object against the
rest, gives the loss coarse targets too, so some protocols learn to be coarse.

Merges are *hierarchical* in space: labels are grouped by agglomerative clustering of
their centroids (atlas regions -> lobe-like groups -> hemisphere-like halves; organs ->
body regions), or at random for synthetic partitions, whose labels carry no anatomy.

Example::

    rng = np.random.default_rng(0)
    fg = figure_ground(task, rng)            # labels {0, 1}: all structures vs background
    coarse = merge_labels(task, rng, 3)      # labels {0, 1, 2, 3}: spatial super-labels
    task = regranulate(task, rng, p_figure=0.2, p_coarse=0.25)   # the training mix
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from .taskset import TaskSet

# Super-label counts of coarse tasks (the "2-5 regions").
COARSE_RANGE = (2, 5)


def _relabelled(task: TaskSet, lut: np.ndarray, kind: str) -> Optional[TaskSet]:
    """``task`` with labels mapped through ``lut`` (old -> new); None when the sampled
    label's new value is not present in every image (it always is when lut[label] > 0)."""
    maps = lut[task.labelmaps]
    label = int(lut[task.label]) if task.label > 0 else 0
    if label <= 0 or not bool(np.all((maps == label).reshape(maps.shape[0], -1).any(1))):
        return None
    return replace(task, labelmaps=maps, label=label, protocol=f"{task.protocol}:{kind}")


def figure_ground(task: TaskSet, rng: np.random.Generator, p_object: float = 0.5) -> Optional[TaskSet]:
    """One object against everything else -> labels {0, 1}.

    With probability 1 - ``p_object`` (or when the set has no background), the object
    is the sampled label against the rest; otherwise it is the union of every
    structure against the background (whole brain, body, all nuclei).
    """
    n = int(task.labelmaps.max()) + 1
    has_background = bool((task.labelmaps == 0).reshape(task.size, -1).any(1).all())
    lut = np.zeros(n, dtype=np.int64)
    if has_background and rng.random() < p_object:
        lut[1:] = 1
        kind = "figure_all"
    else:
        lut[task.label] = 1
        kind = "figure_one"
    return _relabelled(task, lut, kind)


def _centroids(labelmaps: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean (row, col) of each label over all images of the set -> float [L, 2]."""
    rows, cols = np.indices(labelmaps.shape[1:])
    flat = labelmaps.reshape(labelmaps.shape[0], -1)
    n = int(labelmaps.max()) + 1
    counts = sum(np.bincount(f, minlength=n) for f in flat).astype(np.float64)
    r = sum(np.bincount(f, weights=rows.ravel(), minlength=n) for f in flat)
    c = sum(np.bincount(f, weights=cols.ravel(), minlength=n) for f in flat)
    safe = np.maximum(counts, 1.0)
    return np.stack([r / safe, c / safe], axis=1)[labels]


def merge_labels(task: TaskSet, rng: np.random.Generator, groups: int,
                 spatial: bool = True) -> Optional[TaskSet]:
    """Merge the set's labels > 0 into ``groups`` super-labels 1..groups (0 stays 0).

    ``spatial`` groups labels by Ward clustering of their centroids (neighbours merge
    first, like regions into lobes); otherwise labels are dealt to groups at random.
    Returns None when the set has fewer than ``groups`` + 1 labels (nothing to merge).
    """
    present = np.unique(task.labelmaps)
    present = present[present > 0]
    if present.size <= groups:
        return None
    if spatial:
        cent = _centroids(task.labelmaps, present)
        # A little jitter breaks ties between equidistant centroids differently per draw.
        cent = cent + rng.normal(0, 0.5, cent.shape)
        assign = fcluster(linkage(cent, method="ward"), t=groups, criterion="maxclust")
    else:
        assign = np.r_[np.arange(1, groups + 1), rng.integers(1, groups + 1, present.size - groups)]
        assign = rng.permutation(assign)
    # fcluster numbers groups in tree order; shuffle so that super-label ids carry no position.
    order = rng.permutation(int(assign.max())) + 1
    lut = np.zeros(int(task.labelmaps.max()) + 1, dtype=np.int64)
    lut[present] = order[assign - 1]
    return _relabelled(task, lut, f"coarse{int(assign.max())}")


def regranulate(task: TaskSet, rng: np.random.Generator, p_figure: float,
                p_coarse: float) -> TaskSet:
    """The training mix: figure/ground with probability ``p_figure``, a coarse merge into
    2-5 super-labels with probability ``p_coarse``, else the set as drawn.

    Synthetic sets are merged at random half of the time (their labels have no anatomy
    to follow); real sets always by space. A merge that cannot apply keeps the set.
    """
    u = rng.random()
    out = None
    if u < p_figure:
        out = figure_ground(task, rng)
    elif u < p_figure + p_coarse:
        groups = int(rng.integers(COARSE_RANGE[0], COARSE_RANGE[1] + 1))
        spatial = task.dataset != "synthetic" or rng.random() < 0.5
        out = merge_labels(task, rng, groups, spatial)
    return task if out is None else out


def is_coarse(task: TaskSet) -> bool:
    """Whether ``task`` was relabelled here (figure/ground or coarse super-labels)."""
    tail = task.protocol.rsplit(":", 1)[-1]
    return tail.startswith(("figure_", "coarse"))


def zone_protocols(M: int, coarse: bool, zone: float) -> List[int]:
    """Protocols a set may win when the first ``zone`` of protocol positions is kept for
    coarse sets: positions t_m = m / (M - 1) <= zone for coarse sets, the rest for the others.

    Why: with every protocol open to every set, the coarse sets pulled all protocols
    toward few labels, and small structures lost what fine parcels kept (issue 20,
    model v2). Zones by position make the split explicit: the same protocol positions
    come out coarse at any M, and the fine ones never see a coarse target. Protocol 0
    (t = 0) is always coarse; with zone < 1 and M > 1 the last one is always fine.
    """
    t = [m / max(M - 1, 1) for m in range(M)]
    if coarse:
        return [m for m in range(M) if t[m] <= zone]
    fine = [m for m in range(M) if t[m] > zone]
    return fine or list(range(M))
