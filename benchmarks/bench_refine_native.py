"""Click refinement on slices larger than the refiner's input: the focus crop against the whole image alone.

    python benchmarks/bench_refine_native.py [--size 256] [--part select|test] [--sets 40] [--clicks 10]
                                             [--arms focus|geodesic|intensity]

bench_refine.py scores 128 x 128 slices, the model's own input size, where the refiner sees every pixel.
Clinical slices are larger, and the panel refines them at their own size: the Refiner fits each into 128 x 128
and maps the logits back, and with the focus crop (pancakes.refine.focus_crop) adds a second pass at the
slice's own resolution around the mask and the clicks. Here the dev split's slices are cut at ``--size``
(the same volumes and labels, a bank of its own: pancakes.training.real_data.dev_sets(size=...)), the
shipped protocol model gives each image its best label's core and the chosen protocol's label prior (as
the panel gives a kept label), and both arms run the same sessions through Refiner.refine_logits: clicks at
the centre of the largest error of that arm's own mask, at the slice's size, the last logits fed back.
Dice is measured at that size. Prints Dice after 0..--clicks clicks for both arms, the paired difference
with a 95 % interval (sets resampled whole) and the difference per dev dataset. Choose on ``select``;
``test`` reports. ``--issue-targets`` also runs, at this size, the refiner with the crop from an empty mask
and the random walker from the same clicks (bench_refine.py's anchor), and prints issue 21's targets for the
panel's start against them. ``--arms geodesic`` compares the clicks' geodesic reach
(pancakes.refine.geodesic_prior) off and on instead, both with the focus crop; the focus arms both have it, as
the product does. ``--arms intensity`` compares the mask's own intensities near its border
(pancakes.refine.intensity_prior) off and on, with everything else as the product has it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_refine import ROOT, pancakes_seeds, targets_table
from pancakes.evaluation.click_baselines import random_walker_curves
from compare_refiners import paired_interval
from pancakes.evaluation.metrics import dice
from pancakes.refine.clicks import next_click
from pancakes.refine.refiner import Refiner
from pancakes.training.distinct import first_occurrences

SHOWN = (1, 2, 3, 4, 5, 6, 10)


def session(refiner: Refiner, image: np.ndarray, target: np.ndarray, seed: np.ndarray, prior, n_clicks: int) -> list:
    """Dice after 0..n_clicks clicks of one session through the product's path (image [H, W] in [0, 1])."""
    mask, previous, pos, neg = seed.copy(), None, [], []
    out = [float(dice(mask[None], target[None])[0])]
    for _ in range(n_clicks):
        click = next_click(mask, target)
        if click is not None:
            (pos if click[2] else neg).append((float(click[0]), float(click[1])))
        previous = refiner.refine_logits(image, seed, pos, neg, previous, label_prior=prior)
        mask = previous > 0
        out.append(float(dice(mask[None], target[None])[0]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refiner", default=None, help="refiner model file (default: bundled)")
    ap.add_argument("--pancakes", default=str(ROOT / "model_weights" / "pancakes.pt"))
    ap.add_argument("--size", type=int, default=256, help="slice side in pixels (default 256)")
    ap.add_argument("--part", choices=["select", "test"], default="select")
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arms", choices=["focus", "geodesic", "intensity"], default="focus",
                    help="what the two arms differ in: the focus crop (default), the clicks' geodesic reach or the "
                         "mask's own intensities")
    ap.add_argument("--issue-targets", action="store_true", dest="issue_targets",
                    help="also the empty start (with the crop) and the random walker, and issue 21's targets")
    args = ap.parse_args(argv)
    if args.size <= 128:
        ap.error(f"--size {args.size}: the focus crop only acts on slices larger than the 128-pixel model input")
    torch.set_num_threads(args.threads)
    from pancakes.training.real_data import dev_sets

    t0 = time.time()
    sets = dev_sets(4, args.sets, seed=args.seed, part=args.part, size=args.size)
    images = np.concatenate([ts.images for ts in sets]).astype(np.float32)
    targets = np.concatenate([ts.labelmaps == ts.label for ts in sets])
    groups = np.array([i for i, ts in enumerate(sets) for _ in range(ts.size)])
    kinds = np.array([ts.dataset for ts in sets for _ in range(ts.size)])
    _, cores, (labels, confidence) = pancakes_seeds(Path(args.pancakes), sets, with_cores=True)
    keep = first_occurrences(images, targets)
    images, targets, groups, kinds, cores, labels, confidence = (
        a[keep] for a in (images, targets, groups, kinds, cores, labels, confidence))
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    arms = {}
    settings = {"focus": (("whole image", dict(focus=False)), ("with the focus crop", dict(focus=True))),
                "geodesic": (("without the geodesic reach", dict(geodesic=False)),
                             ("with the geodesic reach", dict(geodesic=True))),
                "intensity": (("without the mask's own intensities", dict(intensity=False)),
                              ("with the mask's own intensities", dict(intensity=True)))}[args.arms]
    for name, options in settings:
        refiner = Refiner.load(args.refiner, device="cpu", **options)
        arms[name] = np.array([session(refiner, images[i], targets[i], cores[i], (labels[i], confidence[i]),
                                       args.clicks) for i in range(len(images))])
    a, b = arms.values()
    shown = [c for c in SHOWN if c <= args.clicks]
    print(f"{args.part} half at {args.size} x {args.size}: {len(images)} distinct images from {len(sets)} sets; "
          f"refiner {args.refiner or 'bundled'}; start: the best label's core with the label prior; "
          f"{time.time() - t0:.0f} s\n")
    print("| arm | " + " | ".join(f"{c} clicks" for c in shown) + " |")
    print("|---|" + "---:|" * len(shown))
    for name, curves in arms.items():
        print(f"| {name} | " + " | ".join(f"{curves[:, c].mean():.3f}" for c in shown) + " |")
    rng = np.random.default_rng(0)
    cells = []
    for c in shown:
        lo, hi = paired_interval(b[:, c] - a[:, c], members, rng)
        cells.append(f"{(b[:, c] - a[:, c]).mean():+.3f} ({lo:+.3f} to {hi:+.3f})")
    difference = f"{settings[1][0]} minus {settings[0][0]}"
    print(f"| {difference} (95 % interval) | " + " | ".join(cells) + " |")
    print(f"\nBy dev dataset: {difference} (images)\n")
    print("| dataset | images | " + " | ".join(f"{c} clicks" for c in shown) + " |")
    print("|---|---:|" + "---:|" * len(shown))
    for kind in np.unique(kinds):
        s = kinds == kind
        print(f"| {kind} | {int(s.sum())} | " + " | ".join(f"{(b[s, c] - a[s, c]).mean():+.3f}" for c in shown) + " |")
    if args.issue_targets:
        refiner = Refiner.load(args.refiner, device="cpu")
        empty = np.array([session(refiner, images[i], targets[i], np.zeros_like(cores[i]), None, args.clicks)
                          for i in range(len(images))])
        walker = random_walker_curves(images, targets, args.clicks)
        print(f"\nAt {args.size} x {args.size}, the refiner with the focus crop:\n")
        print("| start | " + " | ".join(f"{c} clicks" for c in shown) + " |")
        print("|---|" + "---:|" * len(shown))
        for name, curves in (("the core with the label prior (the panel's)", b), ("empty", empty),
                             ("random walker from the clicks, empty", walker)):
            print(f"| {name} | " + " | ".join(f"{curves[:, c].mean():.3f}" for c in shown) + " |")
        print(targets_table(b, empty))
        below = [c for c in range(1, args.clicks + 1) if min(b[:, c].mean(), empty[:, c].mean()) <= walker[:, c].mean()]
        print(f"| both refiner starts above the random walker at clicks 1..{args.clicks} | "
              f"{'at every click' if not below else 'not at ' + ', '.join(map(str, below))} | "
              f"{'yes' if not below else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
