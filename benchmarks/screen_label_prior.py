"""Choose the label prior's weight and bias (pancakes.refine.label_prior) for a refiner, on the select half.

    python benchmarks/screen_label_prior.py [--refiner FILE] [--forms 4,0.3 3,0.3 4,0.4] [--sets 40]

Each (weight, bias) is paired with no prior on the same DEV images (distinct ones, sets resampled whole for
the 95 % intervals), from the chosen label's core as the panel gives it and from an empty mask, and the
clicks go to each session's own largest error. The select half only: the test half reports what was chosen.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from bench_refine import ROOT, pancakes_seeds, session_curves
from compare_refiners import paired_interval
from pancakes.refine.refiner import Refiner
from pancakes.training.distinct import first_occurrences

CLICKS = (1, 2, 3, 5, 10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refiner", default=None, help="refiner model file (default: bundled)")
    ap.add_argument("--pancakes", default=str(ROOT / "model_weights" / "pancakes.pt"))
    ap.add_argument("--forms", nargs="+", default=["4,0.3"], help="weight,bias pairs to screen")
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=["select", "test"], default="select",
                    help="select (default): where forms are chosen; test: to report the chosen one only")
    args = ap.parse_args(argv)
    try:
        forms = [tuple(float(v) for v in f.split(",")) for f in args.forms]
        if any(len(f) != 2 for f in forms):
            raise ValueError
    except ValueError:
        ap.error(f"--forms {' '.join(args.forms)}: expected weight,bias pairs such as 4,0.3")
    torch.set_num_threads(1)
    from pancakes.training.real_data import dev_sets

    sets = dev_sets(4, args.sets, seed=args.seed, part=args.part)
    images = np.concatenate([ts.images for ts in sets]).astype(np.float32)
    targets = np.concatenate([ts.labelmaps == ts.label for ts in sets])
    groups = np.array([i for i, ts in enumerate(sets) for _ in range(ts.size)])
    _, cores, priors = pancakes_seeds(Path(args.pancakes), sets, with_cores=True)
    keep = first_occurrences(images, targets)
    images, targets, groups, cores = images[keep], targets[keep], groups[keep], cores[keep]
    priors = (priors[0][keep], priors[1][keep])
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    refiner = Refiner.load(args.refiner, device="cpu")
    starts = {"the label's core": cores, "empty": np.zeros_like(cores)}
    base = {name: session_curves(refiner, images, targets, s, None, 10) for name, s in starts.items()}
    rng = np.random.default_rng(0)
    print(f"{args.part} half, {len(images)} distinct images from {len(sets)} sets; "
          f"refiner {args.refiner or 'bundled'}\n")
    print("| weight, bias | start | " + " | ".join(f"{c} clicks: with prior (minus without, 95 % interval)"
                                                  for c in CLICKS) + " |")
    print("|---|---|" + "---|" * len(CLICKS))
    for name, b in base.items():
        print(f"| none | {name} | " + " | ".join(f"{b[:, c].mean():.3f}" for c in CLICKS) + " |")
    for weight, bias in forms:
        for name, s in starts.items():
            got = session_curves(refiner, images, targets, s, priors, 10, prior_form=(weight, bias))
            cells = []
            for c in CLICKS:
                d = got[:, c] - base[name][:, c]
                lo, hi = paired_interval(d, members, rng)
                cells.append(f"{got[:, c].mean():.3f} ({d.mean():+.3f}, {lo:+.3f} to {hi:+.3f})")
            print(f"| {weight:g}, {bias:g} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
