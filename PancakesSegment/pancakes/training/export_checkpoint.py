"""Turn any training checkpoint into a TorchScript model file, as the run exports its best.

Why: a run exports only the checkpoint with the best *periodic* score (a few sets per
kind, without the engine's adaptation). Choosing among saved checkpoints with a larger
evaluation on the dev split's select half needs each of them as a model file.

Usage::

    python -m pancakes.training.export_checkpoint runs/v2b/snap/last_0710.ckpt runs/v2b_0710.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .loop import Trainer


def export_checkpoint(ckpt: Path, out: Path) -> dict:
    """Write the weights of ``ckpt`` (a Trainer state) to the model file ``out``.

    Returns the checkpoint's training summary (step, elapsed). The file's metadata names
    the checkpoint's step and its last periodic evaluation, as an export during the run would.
    """
    from .train import export

    state = load_checkpoint(ckpt)
    cfg = TrainConfig.from_dict(dict(state["config"]))
    cfg.device = "cpu"
    trainer = Trainer(cfg, Path(out).parent, sample_set=None, augment=None, log=lambda m: None)
    trainer.net.load_state_dict(state["net"])
    trainer.step, trainer.elapsed = state["step"], state["elapsed"]
    trainer.history, trainer.init_from = state.get("history", []), state.get("init_from")
    evals = [h for h in trainer.history if "score" in h]
    res = dict(evals[-1]) if evals else {}
    res["checkpoint"] = str(ckpt)
    export(trainer, res, Path(out))
    return {"step": trainer.step, "elapsed": trainer.elapsed}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path, help="model file to write (.pt)")
    args = ap.parse_args(argv)
    try:
        info = export_checkpoint(args.checkpoint, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: step {info['step']}, {info['elapsed']:.0f} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
