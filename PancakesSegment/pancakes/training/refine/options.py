"""Command-line options of the refiner's trainer (python -m pancakes.training.refine.train), checked."""
from __future__ import annotations

import argparse
from typing import Sequence

from ...contract import DEFAULT_SUPERPIXELS
from .data import REAL_SHARE

# Share of training seeds that are real Pancakes labels (best (m, k) for the target).
# Perturbed truth alone taught the refiner to trust its seed: real best labels are much
# worse (Dice ~0.3 on the dev sets, large false-positive regions), and from them the
# first refiner needed more clicks than from an empty mask. Half and half keeps the
# perturbed cases (small border errors, empty, a neighbour's label) that users also give.
P_PANCAKES_SEED = 0.5


def parse(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pancakes.training.refine.train",
                                 description="Train the click refiner and export it as TorchScript.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=25.0, help="total wall-clock budget, resumed runs included")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps-per-sample", type=int, default=3, dest="steps_per_sample")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warm-clicks", type=int, default=0, dest="warm_clicks",
                    help="play up to this many clicks without gradients before the graded steps (0: none)")
    ap.add_argument("--warm-share", type=float, default=0.5, dest="warm_share",
                    help="share of sessions that play warm clicks (the rest start at their seed)")
    ap.add_argument("--seed-prior", type=float, default=1.0, dest="seed_prior",
                    help="probability the previous channel gives seed pixels before the first click (1 - it "
                         "elsewhere); below 1 marks the seed as a guess. Saved in the model's metadata")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0,
                    help="processes that draw examples and simulate clicks (0: in-process); for GPU runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic-only", action="store_true")
    ap.add_argument("--templates", type=int, default=32, help="synthetic templates (the shared cache holds 32)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--init", help="start from the weights of a refiner TorchScript file (e.g. model_weights/refine.pt) "
                                   "or of a run's last.ckpt; a narrower one is widened to --features first, "
                                   "computing the same logits (pancakes.training.widen)")
    ap.add_argument("--max-iterations", type=int, default=None, dest="max_iterations")
    ap.add_argument("--pancakes-share", type=float, default=P_PANCAKES_SEED, dest="pancakes_share",
                    help="share of seeds that are the best label of the protocol model (0: perturbed truth only)")
    ap.add_argument("--pancakes", default=None,
                    help="protocol model for those seeds (default: the bundled pancakes.pt), or a FILE.state written "
                         "by save_pancakes_state for a torch that cannot read the TorchScript file")
    ap.add_argument("--seed-superpixels", type=int, choices=(0, 1), default=int(DEFAULT_SUPERPIXELS),
                    dest="seed_superpixels",
                    help="1: Pancakes seeds pooled in superpixels, as the product decodes them (default); 0: unpooled")
    ap.add_argument("--seed-core", type=float, default=None, dest="seed_core",
                    help="seed with the picked label's core, the pixels where its probability reaches this (the "
                         "product's kept-label seed: pancakes.refine.seed_core.SEED_CORE); default: the whole label")
    ap.add_argument("--label-prior", type=int, choices=(0, 1), default=0, dest="label_prior",
                    help="1: Pancakes-seeded sessions add the picked protocol's label prior to every update, as the "
                         "panel does (pancakes.refine.label_prior); needs --seed-core")
    ap.add_argument("--val-every", type=float, default=300.0, dest="val_every", help="seconds")
    ap.add_argument("--real-share", type=float, default=REAL_SHARE, dest="real_share",
                    help="share of examples from the real TRAIN bank (the rest synthetic), when the bank is there")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="decay of an exponential moving average of the weights, which is validated and exported "
                         "(0: the last weights)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.real_share <= 1.0:
        ap.error(f"--real-share {args.real_share}: expected a share in [0, 1]")
    if not 0.0 <= args.ema < 1.0:
        ap.error(f"--ema {args.ema}: expected a decay in [0, 1)")
    if not 0.5 <= args.seed_prior <= 1.0:
        ap.error(f"--seed-prior {args.seed_prior}: expected a probability in [0.5, 1]")
    if args.seed_core is not None and not 0.0 < args.seed_core <= 1.0:
        ap.error(f"--seed-core {args.seed_core}: expected a probability in (0, 1]")
    if args.label_prior and args.seed_core is None:
        ap.error("--label-prior 1 needs --seed-core: the prior comes from the decode that gives the core")
    return args
