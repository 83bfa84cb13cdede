"""Spreading a refined slice to its neighbours: a 3D random walker seeded on that slice alone.

Why not the refiner slice by slice, as before: given its neighbour as seed and no click, the refiner keeps the
seed, so a label was carried on whether the structure went on or not. On the dev volumes
(benchmarks/bench_refine_propagation.py) that scored a 3D Dice below simply copying the clicked slice to its
neighbours. The random walker (Grady 2006, the method of scikit-image's ``random_walker``, the stand-in for
Slicer's *Grow from seeds*; solved once for the label, pancakes.refine.two_label_walker) solves one diffusion in
3D: inside the refined slice's mask is one seed, around it the other, and each voxel of the neighbours goes to
the seed it reaches across the weaker image edges, so the label follows the structure's intensity and stops where
it ends.

Shapes: volumes are [D0, D1, D2]; the clicked slice is ``index`` along ``axis``, its rows and columns the
other two axes in order.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .two_label_walker import label_probability

# Edge weight of the walker (scikit-image's beta, on intensities in [0, 1] of the volume's window): chosen on
# the select half of the dev labels among 2,000-16,000 (benchmarks/results/refine_propagation_walker.md).
WALKER_BETA = 8000.0
# Pixels around the refined mask's box that the walker sees in the slice plane; the box's outer faces are
# background seeds on every slice, so a label cannot leak past them.
MARGIN_PX = 15
# Seeds on the clicked slice: the mask shrunk by this many pixels is the label, beyond it grown by this many the
# background; the band between is left to the walker, as the refined border is itself a guess.
INNER_PX, OUTER_PX = 2, 3
# The walker's cost grows with its voxels (with scikit-image's solver, about 7 s for 600,000 on this project's
# 2-core CPU; a sixth of that with ours): a larger block is solved on a grid coarsened in the slice plane and its
# probabilities brought back by linear interpolation. On the select half of the dev labels this cap cost 0.001 of
# 3D Dice and saved a sixth of the time.
MAX_VOXELS = 500_000


def spread_mask(volume: np.ndarray, axis: int, index: int, mask: np.ndarray, window: Tuple[float, float],
                spacing: Sequence[float], limit: int, fixed: Optional[Mapping[int, np.ndarray]] = None,
                cancel: Optional[Callable[[], bool]] = None) -> Dict[int, np.ndarray]:
    """The refined slice's label spread to at most ``limit`` slices either side.

    volume: [D0, D1, D2] voxels (a view of a large volume is never copied: only the block around the masks is
    read); axis, index: the clicked slice; mask: bool [rows, cols] of that slice, its refined label (not empty);
    window: the refiner's intensity window (low, high) of this volume; spacing: mm per array axis (3 values);
    fixed: other slices' labels that are settled (slice index along ``axis`` -> bool [rows, cols]: slices the
    user refined with clicks): within the reach they seed the walker as the clicked slice does, so the label
    is filled in between them, and keep their label (an empty one stops the spreading there);
    cancel(): asked between the solver's iterations; True stops it (two_label_walker.WalkCancelled is raised).
    -> {slice index along ``axis``: bool [rows, cols]}, the label on each slice it reached, each slice whole
    (empty outside the walker's box): the runs of slices next to the clicked slice, and next to each settled
    slice within the reach that holds the label, up to the first slice where the label vanishes. The clicked
    and settled slices are among them with their own masks.
    """
    moved = np.moveaxis(volume, axis, 0)  # a view: the clicked slice's axis first
    spacing = tuple(float(spacing[a]) for a in [axis] + [b for b in range(3) if b != axis])
    depth, rows, cols = moved.shape
    first, stop = max(0, index - limit), min(depth, index + limit + 1)
    settled = {int(i) - first: np.asarray(m, bool) for i, m in (fixed or {}).items() if first <= i < stop}
    settled[index - first] = mask
    rr = np.flatnonzero(np.any([m.any(axis=1) for m in settled.values()], axis=0))
    cc = np.flatnonzero(np.any([m.any(axis=0) for m in settled.values()], axis=0))
    r0, r1 = max(0, rr[0] - MARGIN_PX), min(rows, rr[-1] + MARGIN_PX + 1)
    c0, c1 = max(0, cc[0] - MARGIN_PX), min(cols, cc[-1] + MARGIN_PX + 1)
    in_box = {at: m[r0:r1, c0:c1] for at, m in settled.items()}
    image = window_to_unit(moved[first:stop, r0:r1, c0:c1], window)
    # The box's faces are background only where the margin cut them: at the image's edge the structure may go on.
    faces = (r0 > 0, r1 < rows, c0 > 0, c1 < cols)
    inside = _joined_to(_walk(image, _seeds(image.shape, in_box, faces), spacing, cancel), in_box)
    for at, m in in_box.items():
        inside[at] = m
    # The runs of slices the label reached without a gap from a settled slice: beyond a slice it vanished
    # from, it is not this label (and those slices keep what they held).
    present = inside.any(axis=(1, 2))
    reached = np.zeros(len(present), bool)
    for at in in_box:
        low, high = at, at + 1
        while low > 0 and present[low - 1]:
            low -= 1
        while high < len(present) and present[high]:
            high += 1
        reached[low:high] |= present[low:high] | (np.arange(low, high) == at)
    out = {}
    for at in np.flatnonzero(reached):
        whole = np.zeros((rows, cols), bool)
        whole[r0:r1, c0:c1] = inside[at]
        out[first + int(at)] = whole
    return out


def _seeds(shape: Tuple[int, int, int], masks: Mapping[int, np.ndarray],
           faces: Tuple[bool, bool, bool, bool] = (True, True, True, True)) -> np.ndarray:
    """Walker seeds int32 [D, R, C]: 1 the label, 2 the background, 0 free; on each slice of ``masks`` (slice
    -> bool [R, C]) from its mask, and on every slice the block's outer faces (first row, last row, first
    column, last column) that ``faces`` marks."""
    seeds = np.zeros(shape, np.int32)
    for at, mask in masks.items():
        seeds[at][~ndimage.binary_dilation(mask, iterations=OUTER_PX)] = 2
    for marked, where in zip(faces, ((slice(None), 0), (slice(None), -1), (slice(None), slice(None), 0),
                                     (slice(None), slice(None), -1))):
        if marked:
            seeds[where] = 2
    for at, mask in masks.items():
        core = ndimage.binary_erosion(mask, iterations=INNER_PX)
        # A mask thinner than the erosion still seeds the label: with itself.
        seeds[at][core if core.any() else mask] = 1
    return seeds


def _walk(image: np.ndarray, seeds: np.ndarray, spacing: Tuple[float, float, float],
          cancel: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """Bool [D, R, C]: where the walker's label probability exceeds one half. image float32 [D, R, C] in
    [0, 1]; seeds as from :func:`_seeds`. Above MAX_VOXELS the slice plane is coarsened by a whole factor."""
    factor = int(np.ceil(np.sqrt(image.size / MAX_VOXELS)))
    if factor > 1:
        small = _coarsen(image, factor)
        # A coarse voxel is a seed only where all of its fine voxels are (the label's seeds may thin out).
        label = _coarsen((seeds == 1).astype(np.float32), factor) > 0.999
        background = _coarsen((seeds == 2).astype(np.float32), factor) > 0.999
        if not label.any():
            label = _coarsen((seeds == 1).astype(np.float32), factor) > 0
        seeds_small = np.where(label, 1, np.where(background, 2, 0)).astype(np.int32)
        p = label_probability(small, seeds_small, (spacing[0], spacing[1] * factor, spacing[2] * factor), WALKER_BETA,
                              cancel)
        # Back by the same whole factor onto the padded grid, then the padding cut off: each coarse voxel's
        # probability lands on the fine voxels it was the mean of.
        p = ndimage.zoom(p, (1, factor, factor), order=1, grid_mode=True, mode="nearest")
        return p[:, :image.shape[1], :image.shape[2]] > 0.5
    return label_probability(image, seeds, spacing, WALKER_BETA, cancel) > 0.5


def _coarsen(array: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor pixels of each slice: float32 [D, ceil(R / f), ceil(C / f)] (edge pixels
    repeated to fill the last blocks)."""
    d, r, c = array.shape
    pr, pc = -r % factor, -c % factor
    padded = np.pad(array, ((0, 0), (0, pr), (0, pc)), mode="edge")
    return padded.reshape(d, (r + pr) // factor, factor, (c + pc) // factor, factor).mean(axis=(2, 4),
                                                                                       dtype=np.float32)


def _joined_to(inside: np.ndarray, masks: Mapping[int, np.ndarray]) -> np.ndarray:
    """Only the parts of ``inside`` [D, R, C] joined (26-connected) to a settled slice's mask (``masks``: slice
    -> bool [R, C]): a region the walker gave the label elsewhere in the box is not this structure."""
    parts, _ = ndimage.label(inside, structure=np.ones((3, 3, 3), bool))
    keep = np.unique(np.concatenate([parts[at][mask & inside[at]] for at, mask in masks.items()]))
    return np.isin(parts, keep[keep > 0])


def window_to_unit(block: np.ndarray, window: Tuple[float, float]) -> np.ndarray:
    """Voxels of ``block`` as float32 in [0, 1] of the refiner's intensity ``window`` (low, high), as the
    refiner sees a slice; NaN and infinities at ``low``."""
    lo, hi = window
    out = np.asarray(block, np.float32)
    out = np.where(np.isfinite(out), out, lo)
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0)

