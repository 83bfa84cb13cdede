"""Average the weights of model files fine-tuned from one start ("model soup", WiSE-FT).

Why: every v2 run started from the shipped weights and moved along one direction of a
trade-off (figure/ground up, small structures down). Runs fine-tuned from a common start
stay in one basin of the loss, so a weighted mean of their weights is itself a working
network (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022, and "Model
soups", ICML 2022). Interpolating between the start and a fine-tuned run often keeps the
start's strengths and most of the run's gains, and costs no training.

Usage::

    python -m pancakes.training.average_weights OUT.pt A.pt B.pt [C.pt ...] [--weights 0.5 0.3 0.2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..batch import file_sha256
from ..errors import ModelFileError
from ..model_file import default_metadata, save_torchscript
from .checkpoint import net_from_model_file

ARCH_KEYS = ("features", "levels", "hidden", "emb_half", "head")


def normalised_weights(n: int, weights: Optional[Sequence[float]]) -> List[float]:
    """``n`` mixing weights that sum to one; equal weights when none are given."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ValueError(f"--weights: {len(weights)} weights for {n} model files")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--weights: weights must be non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def average_state(states: Sequence[Dict[str, torch.Tensor]], weights: Sequence[float]) -> Dict[str, torch.Tensor]:
    """Weighted mean of state dicts with the same keys and shapes (float tensors averaged)."""
    out = {}
    for key, first in states[0].items():
        if not torch.is_floating_point(first):
            out[key] = first.clone()  # counters and index buffers are not averaged
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for state, w in zip(states, weights):
            acc += w * state[key].to(torch.float64)
        out[key] = acc.to(first.dtype)
    return out


def average_model_files(files: Sequence[Path], out: Path, weights: Optional[Sequence[float]] = None) -> Dict:
    """Write to ``out`` the model whose weights are the weighted mean of ``files``' weights.

    Raises ModelFileError naming the file when the architectures differ. Returns the metadata written.
    """
    if len(files) < 2:
        raise ValueError("give at least two model files to average")
    mix = normalised_weights(len(files), weights)
    nets, metas = zip(*(net_from_model_file(Path(f)) for f in files))
    arch0 = {k: metas[0].get("architecture", {}).get(k) for k in ARCH_KEYS}
    for f, meta in zip(files[1:], metas[1:]):
        arch = {k: meta.get("architecture", {}).get(k) for k in ARCH_KEYS}
        if arch != arch0:
            raise ModelFileError(f"{f}: architecture {arch} differs from {files[0]}'s {arch0}; "
                                 "only runs of one network can be averaged")
    net = nets[0]
    net.load_state_dict(average_state([n.state_dict() for n in nets], mix))
    ingredients = [{"file": str(f), "sha256": file_sha256(f), "weight": round(w, 6),
                    "steps_total": m.get("training", {}).get("steps_total")}
                   for f, m, w in zip(files, metas, mix)]
    training = {"trained": True, "method": "weight average of model files fine-tuned from one start",
                "ingredients": ingredients}
    meta = default_metadata(net, training=training, architecture=metas[0].get("architecture", {}))
    save_torchscript(net, out, meta)
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="model file to write (.pt)")
    ap.add_argument("models", type=Path, nargs="+", help="model files fine-tuned from one start")
    ap.add_argument("--weights", type=float, nargs="+", help="mixing weights (normalised to sum to 1)")
    args = ap.parse_args(argv)
    try:
        meta = average_model_files(args.models, args.out, args.weights)
    except (ValueError, ModelFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mix = ", ".join(f"{i['weight']:.3g} x {i['file']}" for i in meta["training"]["ingredients"])
    print(f"{args.out}: {mix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
