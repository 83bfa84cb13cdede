"""Click refinement benchmark on the DEV sets: mean Dice after 0..10 simulated clicks.

    python benchmarks/bench_refine.py [--refiner model_weights/refine.pt] [--pancakes model_weights/pancakes.pt]
                                      [--sets 40] [--set-size 4] [--clicks 10] [--noc-cap 20] [--part test]
                                      [--png benchmarks/results/refine_curve.png]

Every DEV image (pancakes.training.real_data.dev_sets; never trained on) with its set's
target label is refined in up to three sessions, each clicking the centre of the largest
error component, one click at a time, feeding the previous prediction back:
  1. from the best Pancakes label of that image (the (m, k) of highest Dice at M=8,
     K=20) when a Pancakes model file exists; otherwise from a perturbed ground truth
     (pancakes.training.refine.seeds, fixed seed), labelled as such in the output;
  2. from that label's core, the pixels where its probability is at least
     pancakes.refine.seed_core.SEED_CORE (when the model file exists);
  3. from that core with the chosen protocol's label prior (pancakes.refine.label_prior): what the
     Slicer panel gives a kept label, and the start the targets are judged on;
  4. from an empty mask;
and, as the anchor annotators use today (Slicer's "Grow from seeds"), a random walker
seeded by the same simulated clicks with the image border as background
(pancakes.evaluation.click_baselines). Sessions run to --noc-cap clicks for NoC@80/90;
the tables show 0..--clicks. Sets come from one half of the dev split (--part; the
reported half is "test", the refiner's checkpoints are chosen on "select"), and each
distinct (image, target) is scored once unless --with-repeats.
Prints Markdown tables (overall and per dev dataset) and writes the curves as a PNG.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pancakes.evaluation.click_baselines import random_walker_curves
from pancakes.training.refine.click_stats import (bootstrap_click_stats, clicks_to_reach, empty_clicks_worth, noc,
                                                    plateau_clicks)
from pancakes.refine.clicks import next_click
from pancakes.refine.refiner import Refiner
from pancakes.refine.seed_core import SEED_CORE
from pancakes.training.distinct import first_occurrences
from pancakes.training.refine.seeds import best_label_cores, perturbed_seed
from pancakes.training.refine.simulate import click_curves

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "random walker from clicks (empty start)"


def pancakes_seeds(path: Path, sets, with_cores: bool = False):
    """Best (m, k) per image at M=8, K=20 -> its mask bool [N, H, W] (N = all images of all sets); with
    ``with_cores`` also the pixels where its probability reaches SEED_CORE (pancakes.refine.seed_core) and
    the picked protocol's (labels, confidence) for pancakes.refine.label_prior, from the same decode:
    (masks, cores, (labels [N, H, W], confidence [N, H, W]))."""
    from pancakes import Pancakes

    model = Pancakes.load(path, device="cpu")
    masks, cores, labels, confidence = [], [], [], []
    for ts in sets:
        probs = model.probabilities(model.encode(ts.images), 8, 20)
        seeds, _, core, (lab, conf) = best_label_cores(probs, ts.labelmaps == ts.label, K=20, threshold=SEED_CORE,
                                                       with_prior=True)
        masks.append(seeds)
        cores.append(core)
        labels.append(lab)
        confidence.append(conf)
    if not with_cores:
        return np.concatenate(masks)
    return np.concatenate(masks), np.concatenate(cores), (np.concatenate(labels), np.concatenate(confidence))


def session_curves(refiner, images: np.ndarray, targets: np.ndarray, starts: np.ndarray, priors, n_clicks: int,
                   batch: int = 32, **prior_form) -> np.ndarray:
    """Dice curves float [N, n_clicks + 1] of ``refiner`` (pancakes.Refiner) from ``starts`` bool [N, H, W], with
    the label prior's (labels, confidence) [N, H, W] each when ``priors`` is given, in batches of ``batch``
    (``prior_form``: passed on to click_curves)."""
    return np.concatenate([click_curves(refiner.forward, images[i:i + batch], targets[i:i + batch],
                                        starts[i:i + batch], n_clicks, seed_prior=refiner.seed_prior,
                                        geodesic=refiner.geodesic, intensity=refiner.intensity,
                                        priors=None if priors is None else (priors[0][i:i + batch],
                                                                            priors[1][i:i + batch]), **prior_form)
                           for i in range(0, len(images), batch)])


def first_click_table(seeds: np.ndarray, targets: np.ndarray, seeded: np.ndarray, empty: np.ndarray) -> str:
    """Markdown: seeded sessions split by their first click (positive: the seed misses most;
    negative: a wrong region of the seed is the largest error), Dice at 0 / 1 / 3 clicks
    from the seed and, on the same images, from empty. seeds, targets bool [N, S, S]."""
    first = [next_click(s, t) for s, t in zip(seeds, targets)]
    positive = np.array([c is not None and bool(c[2]) for c in first])
    rows = ["\nfirst click from the seed (mean Dice at 0 / 1 / 3 clicks):\n",
            "| first click | images | from the seed | from empty |", "|---|---:|---|---|"]
    for name, sel in (("positive (add)", positive), ("negative (remove)", ~positive)):
        if sel.any():
            cells = [" / ".join(f"{c[sel][:, k].mean():.2f}" for k in (0, 1, 3)) for c in (seeded, empty)]
            rows.append(f"| {name} | {int(sel.sum())} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def targets_table(seeded: np.ndarray, empty: np.ndarray) -> str:
    """Issue 21's targets from the two refiner curves [N, C + 1] of the same images."""
    s, e = seeded.mean(0), empty.mean(0)
    worse = [c for c in range(1, len(s)) if s[c] < e[c]]
    lines = ["\n| target | measured | met |", "|---|---|---|",
             f"| never worse: seed >= empty at clicks 1..{len(s) - 1} | worse at "
             f"{', '.join(map(str, worse)) or 'none'} (largest gap {100 * max(0.0, *(e - s)[1:]):.1f} pts) | "
             f"{'yes' if not worse else 'no'} |"]
    if len(s) > 3:
        lines.append(f"| strong early: Dice at 3 clicks from the seed >= 0.80 | {s[3]:.3f} | {'yes' if s[3] >= 0.8 else 'no'} |")
    lines.append(f"| first click adds >= 5 pts | {100 * (s[1] - s[0]):+.1f} pts | {'yes' if s[1] - s[0] >= 0.05 else 'no'} |")
    if len(s) > 6:
        lines.append(f"| half the clicks: seed at 3 >= empty at 6 | {s[3]:.3f} vs {e[6]:.3f} | "
                     f"{'yes' if s[3] >= e[6] else 'no'} |")
    return "\n".join(lines)


def worth_text(clicks, n: int, last: int) -> str:
    """What a start is worth at its click n, given empty_clicks_worth's answer ``clicks`` (None: beyond the
    empty curve's ``last`` click), as the tables print it."""
    return f"beyond {last}" if clicks is None else f"{clicks - n:+.2f}"


def worth_table(seeded: np.ndarray, empty: np.ndarray, datasets: np.ndarray, clicks=(0, 1, 2, 3)) -> str:
    """Markdown: what the seed is worth in clicks, overall and per dev dataset. At seeded click n, the clicks an
    empty start needs for the same mean Dice, less n (empty_clicks_worth); "half the clicks" asks for +3.00 at
    click 3. seeded, empty [N, C + 1] curves of the same images; datasets [N] names."""
    def cell(sel, n):
        return worth_text(empty_clicks_worth(seeded[sel][:, n].mean(), empty[sel].mean(0)), n, empty.shape[1] - 1)
    rows = ["\nwhat the seed is worth: clicks an empty start needs for the seeded mean Dice, less the seeded clicks "
            "(\"half the clicks\" needs +3.00 at click 3)\n",
            "| images | count | " + " | ".join(f"at click {n}" for n in clicks) + " |",
            "|---|---:|" + "---:|" * len(clicks)]
    groups = [("all", np.ones(len(seeded), bool))] + [(ds, datasets == ds) for ds in sorted(set(datasets))]
    for name, sel in groups:
        rows.append(f"| {name} | {int(sel.sum())} | " + " | ".join(cell(sel, n) for n in clicks) + " |")
    return "\n".join(rows)


def plot(curves: dict, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_pillow(curves, path)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, c in curves.items():
        ax.plot(np.arange(c.shape[1]), c.mean(0), marker="o", label=name)
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _plot_pillow(curves: dict, path: Path) -> None:
    from PIL import Image, ImageDraw

    w, h, pad = 600, 400, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([pad, pad, w - pad, h - pad], outline="black")
    colours = ["red", "blue", "green", "orange"]
    for (name, c), col in zip(curves.items(), colours):
        y = c.mean(0)
        pts = [(pad + i * (w - 2 * pad) / (len(y) - 1), h - pad - v * (h - 2 * pad)) for i, v in enumerate(y)]
        d.line(pts, fill=col, width=2)
        d.text((pts[-1][0] - 150, pts[-1][1] + 5), name, fill=col)
    img.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refiner", default=None, help="refiner model file (default: bundled)")
    ap.add_argument("--pancakes", default=str(ROOT / "model_weights" / "pancakes.pt"))
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--set-size", type=int, default=4, dest="set_size")
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--noc-cap", type=int, default=20, dest="noc_cap",
                    help="clicks per session for NoC (never reached counts as the cap)")
    ap.add_argument("--part", choices=["select", "test", "all"], default="test",
                    help="half of the dev split to draw from (default: test, never used for selection)")
    ap.add_argument("--no-anchor", action="store_true", help="skip the random-walker anchor")
    ap.add_argument("--flip-average", type=int, choices=[0, 1], default=1, dest="flip_average",
                    help="1: every update averaged over the image's flips, as the product does (default); 0: one pass")
    ap.add_argument("--geodesic", type=int, choices=[0, 1], default=1,
                    help="add the clicks' geodesic reach to each update, as the product does (default 1)")
    ap.add_argument("--intensity", type=int, choices=[0, 1], default=1,
                    help="add the mask's own intensities near its border to each update, as the product does "
                         "(default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-repeats", action="store_true", dest="with_repeats",
                    help="keep every drawn image, repeats included, as the reports before 2026-12-07 did")
    ap.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "refine_curve.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from pancakes.training.real_data import dev_sets

    t0 = time.time()
    refiner = Refiner.load(args.refiner, device="cpu", flip_average=bool(args.flip_average),
                           geodesic=bool(args.geodesic), intensity=bool(args.intensity))
    sets = dev_sets(args.set_size, args.sets, seed=args.seed, part=None if args.part == "all" else args.part)
    images = np.concatenate([ts.images for ts in sets]).astype(np.float32)
    targets = np.concatenate([ts.labelmaps == ts.label for ts in sets])
    labelmaps = np.concatenate([ts.labelmaps for ts in sets])
    datasets = np.array([ts.dataset for ts in sets for _ in range(ts.size)])
    set_ids = np.array([i for i, ts in enumerate(sets) for _ in range(ts.size)])
    # name -> (start masks bool [N, H, W], the label prior's (labels, confidence) or None)
    starts = {}
    if Path(args.pancakes).is_file():
        seed_name = f"best Pancakes label ({Path(args.pancakes).name}, M=8, K=20)"
        seeds, cores, priors = pancakes_seeds(Path(args.pancakes), sets, True)
        starts[seed_name] = (seeds, None)
        starts[f"its core (probability >= {SEED_CORE})"] = (cores, None)
        product = "its core + the protocol's label prior"
        starts[product] = (cores, priors)
    else:
        seed_name = product = "perturbed-GT seed (no Pancakes model file)"
        print(f"note: {args.pancakes} not found; starting from perturbed ground truth instead", file=sys.stderr)
        rng = np.random.default_rng(args.seed)
        seeds = np.stack([perturbed_seed(t, lm, rng) for t, lm in zip(targets, labelmaps)])
        starts[seed_name] = (seeds, None)
    starts["empty mask"] = (np.zeros_like(seeds), None)
    drawn = len(images)
    if not args.with_repeats:
        keep = first_occurrences(images, targets)
        images, targets, labelmaps = images[keep], targets[keep], labelmaps[keep]
        datasets, set_ids = datasets[keep], set_ids[keep]
        starts = {name: (start[keep], None if pri is None else (pri[0][keep], pri[1][keep]))
                  for name, (start, pri) in starts.items()}
    n_run = max(args.clicks, args.noc_cap)
    curves = {name: session_curves(refiner, images, targets, start, pri, n_run)
              for name, (start, pri) in starts.items()}
    if not args.no_anchor:
        curves[ANCHOR] = random_walker_curves(images, targets, n_run)
    training = refiner.metadata.get("training", {})
    repeats = "" if len(images) == drawn else f", the distinct ones of {drawn} drawn"
    print(f"## Click refinement on DEV sets ({args.part} half): {len(images)} images{repeats} from {len(sets)} sets "
          f"({', '.join(sorted(set(datasets)))})\n")
    print(f"refiner: {args.refiner or 'bundled'}; trained {training.get('iterations', '?')} iterations, "
          f"{training.get('wall_seconds', '?')} s; clicks: centre of the largest error component\n")
    names = list(curves)
    print("| clicks | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for c in range(args.clicks + 1):
        print(f"| {c} | " + " | ".join(f"{curves[n][:, c].mean():.3f}" for n in names) + " |")
    print()
    print(f"\nNoC: clicks to reach the Dice level, sessions capped at {n_run} (never reached counts as {n_run})\n")
    print("| start | +Dice 1st click | plateau (95% of gain) at click | NoC@80 | NoC@90 |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        mean = curves[n][:, : args.clicks + 1].mean(0)
        print(f"| {n} | {100 * (mean[1] - mean[0]):+.1f} pts | {plateau_clicks(mean)} | "
              f"{noc(curves[n], 0.8):.2f} | {noc(curves[n], 0.9):.2f} |")
    for name in starts:
        if name != "empty mask":
            print(f"\nseeded with {name}{' (what the panel gives a kept label)' if name == product else ''}:")
            print(targets_table(curves[name][:, : args.clicks + 1], curves["empty mask"][:, : args.clicks + 1]))
    curves = {n: c[:, : args.clicks + 1] for n, c in curves.items()}
    iv = bootstrap_click_stats(curves[product], curves["empty mask"], set_ids, seed=args.seed)
    print(f"\nfrom here on, the seed is {product}")
    print(f"\n95% intervals, {len(sets)} sets resampled whole (2000 draws, both starts on the same draw): "
          f"plateau from the seed at click {iv['plateau seeded'][0]:.0f} to {iv['plateau seeded'][1]:.0f}, "
          f"from empty {iv['plateau empty'][0]:.0f} to {iv['plateau empty'][1]:.0f}; first click from the seed "
          f"{iv['first click gain seeded'][0]:+.1f} to {iv['first click gain seeded'][1]:+.1f} pts; "
          f"the seeded plateau within half the empty one in {100 * iv['half the clicks'][0]:.0f}% of draws")
    seeded_mean, empty_mean = curves[product].mean(0), curves["empty mask"].mean(0)
    level = empty_mean[plateau_clicks(empty_mean)]
    reach = clicks_to_reach(seeded_mean, level)
    print(f"\nthe paper's form (\"reach the same results\"): the empty start plateaus at Dice {level:.3f} "
          f"(click {plateau_clicks(empty_mean)}); from the seed that Dice comes at click "
          f"{'never' if reach is None else reach} (95% interval {iv['seeded reaches empty plateau'][0]:.0f} to "
          f"{iv['seeded reaches empty plateau'][1]:.0f}, {args.clicks + 1} = never), within half the empty "
          f"plateau's clicks in {100 * iv['half the clicks (reach)'][0]:.0f}% of draws")
    print(first_click_table(starts[product][0], targets, curves[product], curves["empty mask"]))
    print(worth_table(curves[product], curves["empty mask"], datasets))
    if seed_name != product:
        whole = empty_clicks_worth(curves[seed_name][:, 0].mean(), curves["empty mask"].mean(0))
        print(f"\n{seed_name} before any click: worth {f'beyond {args.clicks}' if whole is None else f'{whole:.2f}'} clicks from empty (Dice "
              f"{curves[seed_name][:, 0].mean():.3f}; one empty click gives {curves['empty mask'][:, 1].mean():.3f})")
    print(f"\nper dev dataset (mean Dice at 0 / 1 / 3 / {args.clicks} clicks):\n")
    print("| dataset | images | " + " | ".join(names) + " |")
    print("|---|---:|" + "---|" * len(names))
    for ds in sorted(set(datasets)):
        sel = datasets == ds
        cells = [" / ".join(f"{curves[n][sel][:, c].mean():.2f}" for c in (0, 1, 3, args.clicks)) for n in names]
        print(f"| {ds} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    plot(curves, Path(args.png), f"DEV sets, {len(images)} images; refiner {training.get('iterations', '?')} it.")
    print(f"\ncurve: {args.png}; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
