"""Propagation to neighbouring slices on the dev split's 3D volumes: how well it follows a structure, and its cost.

    python benchmarks/bench_refine_propagation.py [--labels 12] [--threads 2]

The Slicer panel's *Propagate to neighbouring slices* refines the clicked slice, then each neighbour in turn,
seeded with the slice next to it, until the label vanishes or jumps (Refiner.refine_volume_slice, propagate=True).
No figure said how well that follows a real structure, or what its four-pass flip averaging buys there. Here, on
the dev volumes never trained on (abdominal MR organs, brain parcels, lung lesions; axial slices), each label is
refined on its largest slice, seeded with its own truth there and one positive click at its centre (as if the
annotator had just finished that slice), then propagated. Printed per dev dataset and overall: the clicked
slice's Dice, the 3D Dice of the whole result against the label, the share of the label's slices reached,
and the seconds per label: as shipped (at most PROPAGATION_REACH_MM either side, four passes a slice), without
that reach (until the label vanishes or jumps, as before it), and with the reach but one pass a slice.
Without the reach, a label ran on through the whole volume: seeded with its neighbour and given no click,
the refiner keeps its seed.
Labels with odd and even numbers are reported apart ("select" and "test" halves), so that a choice made
on one half can be checked on the other.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PancakesSegment"))

from pancakes.evaluation.metrics import dice  # noqa: E402
from pancakes.refine.refiner import PROPAGATION_REACH_MM, Refiner  # noqa: E402
from pancakes.training import real_sources  # noqa: E402
from pancakes.training.fetch_data import resolve_cache_dir  # noqa: E402

DATASETS = ("totalseg_mr", "mni_neuromorphometrics", "pyradiomics_lung_ct")
MIN_SLICES = 3  # a label on fewer slices has nothing to propagate to


def label_cases(n_labels: int, seed: int = 0):
    """(dataset, volume name, image array (k, j, i), spacing (k, j, i), label value, truth bool (k, j, i)) for up
    to ``n_labels`` labels per dataset (drawn at random among those on at least MIN_SLICES slices)."""
    rng = np.random.default_rng(seed)
    root = resolve_cache_dir()
    for name in DATASETS:
        dataset = getattr(real_sources, name)(root)
        # The MNI templates share one label map: one of them. The lung CTs hold one lesion each: every one.
        volumes = dataset.volumes if name == "pyradiomics_lung_ct" else dataset.volumes[:1]
        for n, volume in enumerate(volumes):
            image = sitk.GetArrayFromImage(volume.image).astype(np.float32)
            spacing = tuple(float(s) for s in volume.image.GetSpacing()[::-1])
            labels = sitk.GetArrayFromImage(next(iter(volume.labels.values())))
            values = [int(v) for v in np.unique(labels) if v != 0
                      and np.count_nonzero((labels == v).any(axis=(1, 2))) >= MIN_SLICES]
            for value in sorted(rng.permutation(values)[:n_labels].tolist()):
                # Numbered across the dataset's volumes, so that the halves split the lung lesions too.
                yield name, volume.name, image, spacing, value + n, labels == value


def dice3d(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool volumes as a whole: pancakes.evaluation.metrics.dice reduces the last two axes, so
    each volume goes in as one slab of its slices' rows."""
    return float(dice(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])))


def propagate(refiner: Refiner, image: np.ndarray, spacing, truth: np.ndarray, **options):
    """-> (clicked slice's Dice, 3D Dice, share of the label's slices reached, seconds)."""
    area = truth.sum(axis=(1, 2))
    index = int(np.argmax(area))
    seed = np.zeros_like(truth)
    seed[index] = truth[index]
    inside = ndimage.distance_transform_edt(truth[index])
    centre = np.unravel_index(int(np.argmax(inside)), inside.shape)
    t0 = time.perf_counter()
    out = refiner.refine_volume_slice(image, 0, index, seed, positive=[centre], propagate=True, spacing=spacing,
                                      **options)
    seconds = time.perf_counter() - t0
    present = area > 0
    reached = out.any(axis=(1, 2)) & present
    return (dice3d(out[index], truth[index]), dice3d(out, truth),
            float(reached.sum() / present.sum()), seconds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=int, default=12, help="labels per dev dataset (default 12)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shipped, one_pass = Refiner.load(device="cpu"), Refiner.load(device="cpu", flip_average=False)
    arms = {f"as shipped (reach {PROPAGATION_REACH_MM:g} mm, 4 passes a slice)": (shipped, {}),
            "no reach (until the label vanishes or jumps)": (shipped, {"reach_mm": None}),
            "reach, one pass a slice": (one_pass, {})}
    rows = []
    for name, volume, image, spacing, value, truth in label_cases(args.labels):
        for arm, (refiner, options) in arms.items():
            rows.append((name, value, arm, *propagate(refiner, image, spacing, truth, **options)))
        print(f"{name} {volume} label {value}: " + "; ".join(
            f"{r[2]} {r[3]:.3f} / {r[4]:.3f} / {r[5]:.2f} / {r[6]:.1f} s" for r in rows[-len(arms):]), flush=True)
    print("\nmean clicked-slice Dice / 3D Dice / share of the label's slices reached / seconds per label\n")
    print("| labels | half | n | " + " | ".join(arms) + " |")
    print("|---|---|---:|" + "---|" * len(arms))
    groups = [(name, name) for name in DATASETS] + [("all", None)]
    for label, dataset in groups:
        for half, parity in (("select", 1), ("test", 0), ("both", None)):
            cells, n = [], 0
            for arm in arms:
                sel = [r for r in rows if r[2] == arm and (dataset is None or r[0] == dataset)
                       and (parity is None or r[1] % 2 == parity)]
                n = len(sel)
                cells.append(" / ".join(f"{np.mean([r[k] for r in sel]):.3f}" if k < 6 else
                                        f"{np.mean([r[k] for r in sel]):.1f}" for k in (3, 4, 5, 6)) if sel else "-")
            print(f"| {label} | {half} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
