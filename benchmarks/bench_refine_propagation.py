"""Propagation to neighbouring slices on the dev split's 3D volumes: how well it follows a structure, and its cost.

    python benchmarks/bench_refine_propagation.py [--labels 12] [--threads 2]
    python benchmarks/bench_refine_propagation.py --ct      # the walker's time on a clinical CT grid only
    python benchmarks/bench_refine_propagation.py --second-slice [--labels 12]

The Slicer panel's *Propagate to neighbouring slices* refines the clicked slice, then spreads its label to the
neighbours by a 3D random walker seeded on that slice (pancakes.refine.propagation), at most
PROPAGATION_REACH_MM either side. Here, on the dev volumes never trained on (abdominal MR organs, brain parcels,
lung lesions; axial slices), each label is refined on its largest slice, seeded with its own truth there and one
positive click at its centre (as if the annotator had just finished that slice), then propagated. Printed per
dev dataset and overall: the clicked slice's Dice, the 3D Dice of the whole result against the label, the share
of the label's slices reached, and the seconds per label, for
- as shipped (the walker, PROPAGATION_REACH_MM), and the walker at 12 mm;
- the slice-by-slice propagation shipped before it, at its 12 mm: each neighbour refined without clicks, seeded
  with the slice next to it, until the label vanished or jumped (Dice with its neighbour below 0.5);
- copying the refined slice to every slice within 12 mm, the simplest baseline.
``--ct`` times the walker alone on a liver-sized ellipsoid in a 512 x 512 x 200 CT grid (0.7 x 0.7 x 1.25 mm),
as shipped and without its voxel cap (pancakes.refine.propagation.MAX_VOXELS), for the Dice within the reach.
``--second-slice``: after that first propagation, the annotator corrects the slice within the reach where it did
worst (again from its truth and one click at its centre) and propagates from there, with the first slice settled
(``fixed_slices``, as the panel passes the slices refined with clicks) and without (as before settled slices):
the 3D Dice after each.
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
from pancakes.refine.refiner import PROPAGATION_REACH_MM, Refiner, reach_in_slices  # noqa: E402
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


def centre_of(mask: np.ndarray):
    """The (row, col) of ``mask`` [H, W] deepest inside it: where the simulated annotator clicks."""
    inside = ndimage.distance_transform_edt(mask)
    return np.unravel_index(int(np.argmax(inside)), inside.shape)


def slice_by_slice(refiner: Refiner, image: np.ndarray, spacing, index: int, refined: np.ndarray,
                   reach_mm: float) -> np.ndarray:
    """The propagation shipped before the walker: bool [D, H, W], each neighbour refined without clicks from
    the slice next to it until the label vanishes or its Dice with that slice falls below 0.5."""
    out = np.zeros(image.shape, bool)
    out[index] = refined
    window = refiner.volume_window(image)
    limit = reach_in_slices(reach_mm, spacing[0], image.shape[0])
    for step in (1, -1):
        neighbour, i = refined, index + step
        while 0 <= i < image.shape[0] and abs(i - index) <= limit and neighbour.any():
            mask = refiner.refine_slice_of_volume(image, 0, i, neighbour, None, None, None, spacing, window) > 0
            if not mask.any() or dice(mask, neighbour) < 0.5:
                break
            out[i], neighbour, i = mask, mask, i + step
    return out


def copied(image: np.ndarray, spacing, index: int, refined: np.ndarray, reach_mm: float) -> np.ndarray:
    """The refined slice copied to every slice within ``reach_mm``: bool [D, H, W]."""
    out = np.zeros(image.shape, bool)
    limit = reach_in_slices(reach_mm, spacing[0], image.shape[0])
    out[max(0, index - limit):index + limit + 1] = refined
    return out


def propagate(refiner: Refiner, image: np.ndarray, spacing, truth: np.ndarray, how: str, reach_mm: float):
    """-> (clicked slice's Dice, 3D Dice, share of the label's slices reached, seconds). how: "walker" (as
    shipped), "slices" (slice by slice) or "copy"."""
    area = truth.sum(axis=(1, 2))
    index = int(np.argmax(area))
    seed = np.zeros_like(truth)
    seed[index] = truth[index]
    t0 = time.perf_counter()
    out = refiner.refine_volume_slice(image, 0, index, seed, positive=[centre_of(truth[index])], propagate=how == "walker",
                                      spacing=spacing, reach_mm=reach_mm)
    if how == "slices":
        out = slice_by_slice(refiner, image, spacing, index, out[index], reach_mm)
    elif how == "copy":
        out = copied(image, spacing, index, out[index], reach_mm)
    seconds = time.perf_counter() - t0
    present = area > 0
    reached = out.any(axis=(1, 2)) & present
    return (dice3d(out[index], truth[index]), dice3d(out, truth),
            float(reached.sum() / present.sum()), seconds)


def second_slice(refiner: Refiner, image: np.ndarray, spacing, truth: np.ndarray):
    """-> (3D Dice after the first propagation, after the second without settled slices, with the first
    settled, the second slice's distance in mm), or None for a label whose first propagation left no slice to
    correct within the reach."""
    area = truth.sum(axis=(1, 2))
    first = int(np.argmax(area))
    seed = np.zeros_like(truth)
    seed[first] = truth[first]
    once = refiner.refine_volume_slice(image, 0, first, seed, positive=[centre_of(truth[first])], propagate=True,
                                       spacing=spacing)
    limit = reach_in_slices(PROPAGATION_REACH_MM, spacing[0], len(area))
    candidates = [i for i in range(max(0, first - limit), min(len(area), first + limit + 1))
                  if i != first and area[i] > 0]
    if not candidates:
        return None
    worst = min(candidates, key=lambda i: dice(once[i], truth[i]))
    corrected = once.copy()
    corrected[worst] = truth[worst]
    results = []
    for fixed in (None, [first]):
        out = refiner.refine_volume_slice(image, 0, worst, corrected, positive=[centre_of(truth[worst])],
                                          propagate=True, spacing=spacing, fixed_slices=fixed)
        results.append(dice3d(out, truth))
    return dice3d(once, truth), results[0], results[1], abs(worst - first) * spacing[0]


def report_second_slice(n_labels: int) -> None:
    refiner = Refiner.load(device="cpu")
    rows = []
    for name, volume, image, spacing, value, truth in label_cases(n_labels):
        result = second_slice(refiner, image, spacing, truth)
        if result is not None:
            rows.append((name, value, *result))
            print(f"{name} {volume} label {value}: " + " / ".join(f"{x:.3f}" for x in result[:3])
                  + f", second slice {result[3]:.0f} mm away", flush=True)
    print("\nmean 3D Dice: after the first slice's propagation / after the second's without settled slices / "
          "with the first settled; mean distance between them\n")
    print("| labels | half | n | first | second, nothing settled | second, first settled | mm apart |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, dataset in [(name, name) for name in DATASETS] + [("all", None)]:
        for half, parity in (("select", 1), ("test", 0), ("both", None)):
            sel = [r for r in rows if (dataset is None or r[0] == dataset) and (parity is None or r[1] % 2 == parity)]
            if sel:
                print(f"| {label} | {half} | {len(sel)} | " + " | ".join(
                    f"{np.mean([r[k] for r in sel]):.3f}" for k in (2, 3, 4)) + f" | {np.mean([r[5] for r in sel]):.0f} |")


def time_clinical_ct() -> None:
    """Print the walker's seconds and Dice within the reach on a large organ in a CT-sized grid, as shipped and
    without the voxel cap."""
    from pancakes.refine import propagation

    spacing, shape = (1.25, 0.7, 0.7), (200, 512, 512)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    organ = (((zz - 100) * spacing[0] / 80) ** 2 + ((yy - 250) * spacing[1] / 70) ** 2
             + ((xx - 200) * spacing[2] / 90) ** 2 <= 1)
    volume = (np.where(organ, 60.0, 0.0) + np.random.default_rng(0).normal(0, 10, shape)).astype(np.float32)
    limit = reach_in_slices(PROPAGATION_REACH_MM, spacing[0], shape[0])
    within = slice(100 - limit, 100 + limit + 1)
    print(f"a {int(organ.sum()):,}-voxel organ in a {shape[2]} x {shape[1]} x {shape[0]} CT grid, "
          f"reach {PROPAGATION_REACH_MM:g} mm ({limit} slices either side)\n")
    print("| walker | seconds | Dice within the reach |\n|---|---:|---:|")
    shipped_cap = propagation.MAX_VOXELS
    for name, cap in (("as shipped (at most %d voxels, coarser above)" % shipped_cap, shipped_cap),
                      ("without the cap", None)):
        propagation.MAX_VOXELS = cap or organ.size
        t0 = time.perf_counter()
        reached = propagation.spread_mask(volume, 0, 100, organ[100], (-50.0, 150.0), spacing, limit)
        seconds = time.perf_counter() - t0
        out = np.zeros(shape, bool)
        for i, mask in reached.items():
            out[i] = mask
        print(f"| {name} | {seconds:.2f} | {dice3d(out[within], organ[within]):.3f} |", flush=True)
    propagation.MAX_VOXELS = shipped_cap


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=int, default=12, help="labels per dev dataset (default 12)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ct", action="store_true", help="only time the walker on a clinical CT grid")
    ap.add_argument("--second-slice", action="store_true",
                    help="only the second corrected slice, with and without the first settled")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.ct:
        time_clinical_ct()
        return 0
    if args.second_slice:
        report_second_slice(args.labels)
        return 0
    refiner = Refiner.load(device="cpu")
    arms = {f"as shipped (the walker, {PROPAGATION_REACH_MM:g} mm)": ("walker", PROPAGATION_REACH_MM),
            "the walker, 12 mm": ("walker", 12.0),
            "slice by slice, 12 mm (shipped before)": ("slices", 12.0),
            "the slice copied, 12 mm": ("copy", 12.0)}
    rows = []
    for name, volume, image, spacing, value, truth in label_cases(args.labels):
        for arm, (how, reach_mm) in arms.items():
            rows.append((name, value, arm, *propagate(refiner, image, spacing, truth, how, reach_mm)))
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
