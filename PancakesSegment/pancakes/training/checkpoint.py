"""Checkpoints that resume exactly, and weights taken from a shipped model file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from ..model_file import load_torchscript
from ..modeling import PancakesNet


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Write atomically: a crash mid-save never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return torch.load(path, map_location="cpu", weights_only=False)


def net_from_model_file(path: Path) -> tuple:
    """Eager PancakesNet with the weights and architecture of a TorchScript model file.

    This is how each stretch of training starts from the shipped weights
    (``--init model_weights/pancakes.pt``) and adds to them.
    """
    module, meta = load_torchscript(path, "cpu")
    arch = meta.get("architecture", {})
    net = PancakesNet(features=arch.get("features", 32), levels=arch.get("levels", 4),
                      emb_half=arch.get("emb_half", 16), head=arch.get("head", "dot"),
                      hidden=arch.get("hidden", 64))
    state = module.state_dict()
    own = net.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape and own[key].dim() == 4 and value.shape[1] < own[key].shape[1]:
            # A layer that gained input channels (the image joined the features):
            # keep the learnt weights, start the new inputs at zero.
            grown = torch.zeros_like(own[key])
            grown[:, : value.shape[1]] = value
            state[key] = grown
    net.load_state_dict(state)
    return net, meta
