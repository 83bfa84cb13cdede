"""Grady's random walker for one label against the rest: one linear solve gives the label's probability.

Why not scikit-image's ``random_walker``, which this follows (its edge weights, its Jacobi-preconditioned
conjugate gradients, its tolerance): it solves one system per label, two for a label and its background where
the second is one minus the first, and builds its Laplacian through a sparse ``setdiag`` that took half its time.
On the blocks propagation solves (pancakes.refine.propagation; a 512 x 512 x 200 CT, bench_refine_update.py)
its call took 1.2 s of the 1.6 s an update spent. Its solve cannot be stopped either; here ``cancel`` is asked
between iterations. And it needs only SciPy, which Slicer's Python has, where scikit-image may be missing.

Shapes: blocks are [D, R, C]; seeds are int with 1 the label, 2 the background and 0 a free voxel.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg

# scikit-image's defaults: the conjugate gradients stop at this residual relative to the right-hand side, and
# every edge keeps this weight however strong its gradient, so that no free voxel is cut off from the seeds.
TOLERANCE = 1e-3
MIN_WEIGHT = 1e-10
# cancel() is asked every this many iterations (one iteration over 500,000 voxels takes about 1 ms).
CANCEL_EVERY = 10


class WalkCancelled(Exception):
    """cancel() said True during the solve."""


def label_probability(image: np.ndarray, seeds: np.ndarray, spacing: Sequence[float], beta: float,
                      cancel: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """The probability that a random walker from each voxel reaches a label seed before a background seed.

    image: float32 [D, R, C], intensities in about [0, 1]; seeds: int [D, R, C] (1 label, 2 background, 0 free);
    spacing: voxel size per axis (3 values); beta: edge sensitivity, as scikit-image's (an edge's weight is
    exp(-beta * (gradient / spacing)^2 / (10 * the block's standard deviation))). A block of one intensity
    walks on equal weights. -> float32 [D, R, C], 1 on the label seeds and 0 on the background ones.
    Raises WalkCancelled when ``cancel()`` says True between iterations.
    """
    free = seeds == 0
    prob = (seeds == 1).astype(np.float32)
    if not free.any():
        return prob
    image = np.asarray(image, np.float32)
    spread = float(image.std())
    # Free voxels are the unknowns, numbered in C order; seeds get -1.
    n = int(free.sum())
    unknown = np.full(image.shape, -1, np.int64)
    unknown[free] = np.arange(n)
    degree = np.zeros(image.shape, np.float32)
    rhs = np.zeros(image.shape, np.float32)  # the weight each free voxel has to label seeds
    rows, cols, values = [], [], []
    for axis in range(3):
        if image.shape[axis] < 2:
            continue
        ahead = [slice(None)] * 3
        behind = [slice(None)] * 3
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        ahead, behind = tuple(ahead), tuple(behind)
        gradient = np.diff(image, axis=axis) / np.float32(spacing[axis])
        weight = np.ones(gradient.shape, np.float32) if spread == 0 else \
            np.exp(np.float32(-beta / (10 * spread)) * gradient * gradient)
        weight += np.float32(MIN_WEIGHT)
        degree[behind] += weight
        degree[ahead] += weight
        rhs[behind] += np.where(seeds[ahead] == 1, weight, 0)
        rhs[ahead] += np.where(seeds[behind] == 1, weight, 0)
        both = free[behind] & free[ahead]
        a, b, w = unknown[behind][both], unknown[ahead][both], -weight[both]
        rows += [a, b]
        cols += [b, a]
        values += [w, w]
    diagonal = degree[free]
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    values.append(diagonal)
    laplacian = sparse.csr_array((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(n, n))
    jacobi = sparse.dia_array((1.0 / diagonal, 0), shape=(n, n))
    iterations = [0]

    def check(_x) -> None:
        iterations[0] += 1
        if cancel is not None and iterations[0] % CANCEL_EVERY == 0 and cancel():
            raise WalkCancelled()

    x, _ = cg(laplacian, rhs[free], rtol=TOLERANCE, atol=0.0, M=jacobi, callback=check)
    prob[free] = x
    return prob
