"""pancakes-train: train the protocol model, resumable, and export it.

    pancakes-train --out runs/r1 [--config cfg.json] [--init model_weights/pancakes.pt]
                   [--resume] [--minutes 60] [--device auto|cpu|cuda]

Writes run_dir/train.log (JSON lines), last.ckpt / best.ckpt, and exports the
best weights to run_dir/pancakes.pt (TorchScript with metadata) whenever the
development score improves. Copy that file to model_weights/ only when its
development table beats the shipped one (see MODEL_CARD.md).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from ..model_file import default_metadata, save_torchscript
from .config import TrainConfig


def summary(trainer, res: dict) -> dict:
    """Training summary stored inside the exported model file."""
    prior = 0
    for h in trainer.history:
        if "prior_training" in h:
            prior = int(h["prior_training"].get("steps_total", 0) or 0)
    return {"trained": True, "steps": trainer.step, "steps_total": prior + trainer.step,
            "init_from": trainer.init_from, "wall_seconds": round(trainer.elapsed),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {trainer.device}",
            "config": trainer.cfg.to_dict(), "dev_eval": res,
            "exported": time.strftime("%Y-%m-%d %H:%M:%S")}


def export(trainer, res: dict, path: Path) -> None:
    cfg = trainer.cfg
    meta = default_metadata(trainer.net, training=summary(trainer, res),
                            architecture={"features": cfg.features, "levels": cfg.levels, "emb_half": cfg.emb_half,
                                          "head": "dot", "hidden": cfg.hidden})
    save_torchscript(trainer.net, path, meta)


def export_or_warn(trainer, res: dict, path: Path, log) -> bool:
    """``export``, but a failure costs a log line, not the run: the checkpoints hold the weights.

    Why: scripting reads the model's source from disk, so a source edit during a long run
    (seen here: a method added to PancakesNet mid-run) made the periodic export raise and
    killed the run at its next best score.
    """
    try:
        export(trainer, res, path)
        return True
    except Exception as exc:  # TorchScript errors are multi-line RuntimeErrors
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        log(f"warning: could not export {path} at step {trainer.step} ({first}); training goes on, "
            f"the weights are in the run's checkpoints")
        return False


def parse(argv: Sequence[str]):
    ap = argparse.ArgumentParser(prog="pancakes-train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (log, checkpoints, exported model)")
    ap.add_argument("--config", help="JSON file of TrainConfig fields")
    ap.add_argument("--init", help="start from the weights of a TorchScript model file")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--minutes", type=float, help="wall-clock budget")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--sets-per-step", type=int, dest="sets_per_step")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--data-cache", help="real data cache folder (default ~/.cache/pancakes/data)")
    ap.add_argument("--synthetic-only", action="store_true", help="do not use real data")
    return ap.parse_args(argv)


def main(argv: Sequence[str] = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    overrides = {k: getattr(args, k) for k in ("steps", "minutes", "device", "sets_per_step", "seed")
                 if getattr(args, k) is not None}
    try:
        cfg = TrainConfig.from_json(Path(args.config), **overrides) if args.config else TrainConfig.from_dict(overrides)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        print(f"pancakes-train: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(run_dir / "messages.log", "a")

    def log(msg: str) -> None:
        line = time.strftime("%H:%M:%S ") + msg
        print(line, file=sys.stderr, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    from .augment import augment_set
    from .evaluate import quick_dev_eval
    from .loop import Trainer
    from .sources import load_real_bank, mixed_sampler
    from .synthetic import SyntheticGenerator

    from .synthetic_bank import default_cache_dir

    # Templates are cached on disk so that each resumed stretch starts at once.
    synthetic = SyntheticGenerator(size=128, n_templates=cfg.synthetic_templates, seed=cfg.seed,
                                   cache_dir=default_cache_dir())
    real = None if args.synthetic_only else load_real_bank(log, args.data_cache)
    sampler = mixed_sampler(synthetic, real, cfg.p_synthetic, log, cfg.real_weights)
    evaluate = None
    try:
        from .real_data import DataUnavailableError
        from .task_kinds import KINDS, all_kind_sets

        # Checkpoints are chosen on the dev split's "select" half, by task kind; the "test"
        # half stays for the figures reported in the model card. Each set once: the select half's
        # lung lesion gives 2 sets of 5 slices, and their repeats would weigh as new evidence.
        per_kind = max(1, cfg.eval_sets // len(KINDS))
        sets = {s: all_kind_sets(s, per_kind, seed=100 + s, part="select", cache_dir=args.data_cache, distinct=True)
                for s in (1, 3, 5)}
        evaluate = quick_dev_eval(sets, adapt=cfg.adapt, coarse=cfg.coarse_train)
    except (ImportError, DataUnavailableError) as exc:
        log(f"warning: no development sets ({exc}); training without periodic evaluation")
    trainer = Trainer(cfg, run_dir, sampler, augment_set, evaluate, log)
    if args.resume and (run_dir / "last.ckpt").is_file():
        # Trainer.resume keeps the checkpoint's network in cfg itself (a widened run is wider than its file says).
        trainer.resume(run_dir / "last.ckpt")
        trainer.cfg = cfg  # a resumed run may extend steps/minutes
    elif args.init:
        trainer.init_weights(Path(args.init))
    log(f"training on {trainer.device}, {torch.get_num_threads()} threads, config {json.dumps(cfg.to_dict())}")
    try:
        trainer.run(on_best=lambda t, res: export_or_warn(t, res, run_dir / "pancakes.pt", log))
    except KeyboardInterrupt:
        from .checkpoint import save_checkpoint

        save_checkpoint(run_dir / "last.ckpt", trainer.state())
        log(f"interrupted at step {trainer.step}; saved {run_dir / 'last.ckpt'}")
        return 130
    if evaluate is None:
        export_or_warn(trainer, {"note": "no development sets available"}, run_dir / "pancakes.pt", log)
    log(f"done: step {trainer.step}, {trainer.elapsed:.0f} s of training; best score {trainer.best_score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
