"""How good must a seed be for issue 21's "half the clicks"? Seeds of known quality, made from the truth.

    python benchmarks/bench_refine_seed_quality.py [--part select|test] [--sets 40] [--clicks 6]

"Half the clicks" asks a seeded session to be, at its 3rd click, where an empty start is at its 6th: the
seed must be worth 3 clicks. bench_refine.py says what the protocol model's seed is worth now. This says
what seed would be enough, so that the protocol model's track knows the bar: on the dev split's images and
targets (the same draw as bench_refine.py, each distinct image once), the shipped refiner (flip average,
geodesic reach, the mask's own intensities; no label prior, as there is no protocol) runs the same click
sessions from seeds derived from the target:
  - the truth itself;
  - dilated by 1, 2 or 4 pixels: covering neighbouring tissue too, as a Pancakes label does;
  - eroded by 1 pixel: inside the target, as a label's confident core is;
  - shifted by 2 or 4 pixels along both axes;
and from an empty mask. Prints Dice after 0..--clicks clicks for each, what each seed is worth in empty-start
clicks (pancakes.training.refine.click_stats.empty_clicks_worth) before any click and at click 3, and whether
it reaches the empty start's 6-click Dice by its 3rd. A diagnostic: it chooses nothing.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from scipy import ndimage as ndi

from bench_refine import session_curves, worth_text
from pancakes.refine.refiner import Refiner
from pancakes.training.distinct import first_occurrences
from pancakes.training.refine.click_stats import empty_clicks_worth


def known_seeds(targets: np.ndarray) -> dict:
    """targets bool [N, S, S] -> {name: seeds bool [N, S, S]}, seeds of known quality made from them."""
    def each(op):
        return np.stack([op(t) for t in targets])
    return {"empty": np.zeros_like(targets),
            "truth": targets.copy(),
            "dilated 1 px": each(lambda t: ndi.binary_dilation(t, iterations=1)),
            "dilated 2 px": each(lambda t: ndi.binary_dilation(t, iterations=2)),
            "dilated 4 px": each(lambda t: ndi.binary_dilation(t, iterations=4)),
            "eroded 1 px": each(lambda t: ndi.binary_erosion(t, iterations=1)),
            "shifted 2 px": each(lambda t: np.roll(t, (2, 2), axis=(0, 1))),
            "shifted 4 px": each(lambda t: np.roll(t, (4, 4), axis=(0, 1)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["select", "test"], default="select")
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--set-size", type=int, default=4, dest="set_size")
    ap.add_argument("--clicks", type=int, default=6, help="clicks per session (at least 6: the target reads click 6)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.clicks < 6:
        ap.error(f"--clicks {args.clicks}: need at least 6, the empty start's click that the target reads")
    torch.set_num_threads(args.threads)
    from pancakes.training.real_data import dev_sets

    t0 = time.time()
    refiner = Refiner.load(device="cpu")
    sets = dev_sets(args.set_size, args.sets, seed=args.seed, part=args.part)
    images = np.concatenate([ts.images for ts in sets]).astype(np.float32)
    targets = np.concatenate([ts.labelmaps == ts.label for ts in sets])
    keep = first_occurrences(images, targets)
    images, targets = images[keep], targets[keep]
    curves = {name: session_curves(refiner, images, targets, seeds, None, args.clicks)
              for name, seeds in known_seeds(targets).items()}
    empty = curves["empty"].mean(0)
    print(f"## Seeds of known quality, dev split {args.part} half: {len(images)} distinct images from {len(sets)} sets\n")
    print("refiner: bundled, as shipped (flip average, geodesic reach, the mask's own intensities; no label prior)\n")
    print("| seed | " + " | ".join(f"{c}" for c in range(args.clicks + 1)) + " |")
    print("|---|" + "---:|" * (args.clicks + 1))
    for name, c in curves.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in c.mean(0)) + " |")
    print(f"\nwhat each seed is worth in empty-start clicks (\"half the clicks\" needs +3.00 at click 3, that is "
          f"Dice {empty[6]:.3f} there)\n")
    print("| seed | Dice before any click | worth before any click | Dice at click 3 | worth at click 3 | "
          "half the clicks |")
    print("|---|---:|---:|---:|---:|---|")
    for name, c in curves.items():
        m = c.mean(0)
        print(f"| {name} | {m[0]:.3f} | {worth_text(empty_clicks_worth(m[0], empty), 0, args.clicks)} | {m[3]:.3f} | "
              f"{worth_text(empty_clicks_worth(m[3], empty), 3, args.clicks)} | {'yes' if m[3] >= empty[6] else 'no'} |")
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
