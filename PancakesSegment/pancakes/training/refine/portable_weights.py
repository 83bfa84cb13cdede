"""Weights in plain tensor files, for machines whose torch cannot read our TorchScript files.

A TorchScript file scripted by one torch embeds that torch's own F.interpolate, and an
older torch may not read it: the GPU machines' torch 2.11 stops at an op that torch
2.13 writes (aten::_upsample_lanczos2d_aa). Training there takes the protocol model
for its seeds from a state file (``save_pancakes_state`` here, ``eager_pancakes``
there) and starts refiners from a run's last.ckpt (``init_weights``).

    python -c "from pancakes.training.refine.portable_weights import save_pancakes_state; \
               save_pancakes_state('model_weights/pancakes.pt', 'pancakes.state')"
    python -m pancakes.training.refine.train --pancakes pancakes.state --init runs/x/last.ckpt ...
"""
from __future__ import annotations

import torch

from ...devices import resolve_device
from ...engine import Pancakes
from ...errors import ModelFileError
from ...model_file import load_torchscript
from ...modeling.pancakes_net import PancakesNet


def save_pancakes_state(model_path: str, out: str) -> None:
    """Protocol model TorchScript file -> ``out``: its weights and metadata as plain tensors
    (``train.py --pancakes FILE.state`` rebuilds the model from them)."""
    module, meta = load_torchscript(model_path, "cpu")
    if "architecture" not in meta:
        raise ModelFileError(f"{model_path}: metadata names no architecture, so the model cannot be rebuilt")
    torch.save({"state_dict": module.state_dict(), "metadata": meta}, out)


def eager_pancakes(path: str, device: str = "cpu") -> Pancakes:
    """A pancakes.Pancakes engine around the eager PancakesNet of a ``save_pancakes_state`` file."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = PancakesNet(**saved["metadata"]["architecture"])
    net.load_state_dict(saved["state_dict"])
    dev = resolve_device(device)
    return Pancakes(net.to(dev).eval(), saved["metadata"], dev)


def init_weights(path: str) -> dict:
    """Refiner weights to start from: a refiner TorchScript file, or a training checkpoint (.ckpt).

    From a checkpoint these are the weights its run exports: the moving average when it kept one (--ema)."""
    if str(path).endswith(".ckpt"):  # what a run leaves in OUT/last.ckpt; loads on older torch too
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if "ema" not in saved:
            return saved["net"]
        # AveragedModel's state: the averaged net under "module." plus its update count.
        return {k[len("module."):]: v for k, v in saved["ema"].items() if k.startswith("module.")}
    # A scripted RefineNet keeps the eager module's parameter names.
    return torch.jit.load(path, map_location="cpu").state_dict()
