"""Paired comparison of two click refiners on the same DEV sets, seeds and simulated clicks.

    python benchmarks/compare_refiners.py A.pt B.pt [--seed 0] [--sets 40] [--part select]

bench_refine.py scores one refiner; deciding whether to replace the shipped one needs
the difference on the same images, with an interval. Both refiners start from the same
seeds: the shipped protocol model's best label's core with the chosen protocol's label prior (what the
panel gives a kept label: pancakes.refine.seed_core, pancakes.refine.label_prior), the core alone, the whole
label (as in bench_refine.py) and empty,
and each click goes to the centre of the largest error of that refiner's own mask.
``--flip-average 0 1`` on one file measures the test-time flip averaging (pancakes.refine.flip_average),
``--geodesic 0 1`` the clicks' geodesic reach (pancakes.refine.geodesic_prior), and ``--intensity 0 1`` the mask's
own intensities near its border (pancakes.refine.intensity_prior).
Prints Dice after 1, 2, 3, 5, 7 and 10 clicks, B - A with a 95 % interval (sets
resampled whole, 2,000 draws), NoC@80 / NoC@90 and the plateau click. It draws from the dev
split's select half by default: a comparison that decides what ships must not use the test half,
which the reported figures (bench_refine.py --part test) come from.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from bench_refine import ROOT, pancakes_seeds, session_curves
from pancakes.training.distinct import first_occurrences
from pancakes.training.refine.click_stats import noc, plateau_clicks
from pancakes.refine.refiner import Refiner

CLICKS = (1, 2, 3, 5, 7, 10)


def curves_for(path: str, images: np.ndarray, targets: np.ndarray, starts: dict, flip_average: bool,
               geodesic: bool = True, intensity: bool = True) -> dict:
    """{start name: Dice curves [N, 11]} of the refiner at ``path``; ``starts``: {name: (seeds [N, H, W],
    the label prior's (labels, confidence) [N, H, W] each, or None)}."""
    refiner = Refiner.load(path, device="cpu", flip_average=flip_average, geodesic=geodesic, intensity=intensity)
    return {name: session_curves(refiner, images, targets, start, priors, 10)
            for name, (start, priors) in starts.items()}


def paired_interval(d: np.ndarray, members: list, rng: np.random.Generator) -> tuple:
    """Per-image differences [N] -> 95 % interval of their mean, sets resampled whole."""
    boots = [d[np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])].mean()
             for _ in range(2000)]
    return tuple(np.percentile(boots, [2.5, 97.5]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--pancakes", default=str(ROOT / "model_weights" / "pancakes.pt"))
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flip-average", type=int, nargs=2, choices=[0, 1], default=[1, 1], dest="flip_average",
                    metavar=("A", "B"), help="test-time flip averaging for A and for B (default 1 1, as the product; "
                    "the same file with 0 1 measures the averaging itself)")
    ap.add_argument("--geodesic", type=int, nargs=2, choices=[0, 1], default=[1, 1], metavar=("A", "B"),
                    help="the clicks' geodesic reach for A and for B (default 1 1, as the product)")
    ap.add_argument("--intensity", type=int, nargs=2, choices=[0, 1], default=[1, 1], metavar=("A", "B"),
                    help="the mask's own intensities near its border for A and for B (default 1 1, as the product)")
    ap.add_argument("--part", choices=["select", "test", "all"], default="select",
                    help="half of the dev split to draw from (default: select, the one choices are made on)")
    ap.add_argument("--with-repeats", action="store_true", dest="with_repeats",
                    help="keep every drawn image, repeats included, as the comparisons before 2026-12-07 did")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from pancakes.training.real_data import dev_sets

    sets = dev_sets(4, args.sets, seed=args.seed, part=None if args.part == "all" else args.part)
    images = np.concatenate([ts.images for ts in sets]).astype(np.float32)
    targets = np.concatenate([ts.labelmaps == ts.label for ts in sets])
    groups = np.array([i for i, ts in enumerate(sets) for _ in range(ts.size)])
    seeds, cores, priors = pancakes_seeds(Path(args.pancakes), sets, with_cores=True)
    if not args.with_repeats:
        keep = first_occurrences(images, targets)
        images, targets, groups, seeds, cores = images[keep], targets[keep], groups[keep], seeds[keep], cores[keep]
        priors = (priors[0][keep], priors[1][keep])
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    starts = {"label's core + label prior": (cores, priors), "label's core": (cores, None),
              "whole label": (seeds, None), "empty": (np.zeros_like(seeds), None)}
    a, b = (curves_for(path, images, targets, starts, bool(flips), bool(geo), bool(inten))
            for path, flips, geo, inten in zip((args.a, args.b), args.flip_average, args.geodesic, args.intensity))
    rng = np.random.default_rng(0)
    (fa, fb), (ga, gb), (ia, ib) = args.flip_average, args.geodesic, args.intensity
    print(f"A = {args.a} (flip averaging {fa}, geodesic {ga}, intensity {ia}); "
          f"B = {args.b} (flip averaging {fb}, geodesic {gb}, intensity {ib}); "
          f"DEV draw seed {args.seed}, {args.part} part: {len(images)} images from {len(sets)} sets\n")
    print("| start | clicks | A | B | B - A (95 % interval) |")
    print("|---|---:|---:|---:|---|")
    for name in starts:
        A, B = a[name], b[name]
        for c in CLICKS:
            lo, hi = paired_interval(B[:, c] - A[:, c], members, rng)
            print(f"| {name} | {c} | {A[:, c].mean():.3f} | {B[:, c].mean():.3f} | "
                  f"{(B[:, c] - A[:, c]).mean():+.3f} ({lo:+.3f} to {hi:+.3f}) |")
        print(f"| {name} | NoC@80 / NoC@90 | {noc(A, .8):.2f} / {noc(A, .9):.2f} | "
              f"{noc(B, .8):.2f} / {noc(B, .9):.2f} | |")
        print(f"| {name} | plateau (95 % of gain) | {plateau_clicks(A.mean(0))} | {plateau_clicks(B.mean(0))} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
