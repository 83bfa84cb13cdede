"""Save and load Pancakes TorchScript files with their metadata inside.

The metadata travels as the TorchScript extra file ``metadata.json`` so a model
file is self-describing: format version, input size, normalisation, head, and
a training summary for the model card.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from .errors import ModelFileError
from .model_metadata import FORMAT_VERSION, METADATA_FILE, check_metadata  # noqa: F401 (re-exported)


def default_metadata(net: torch.nn.Module, **extra: Any) -> Dict[str, Any]:
    """Metadata every Pancakes model file carries; ``extra`` adds or overrides keys."""
    meta: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": "pancakes",
        "input_size": 128,
        "input_channels": 1,
        "normalisation": {"method": "percentile", "low": 0.5, "high": 99.5, "range": [0.0, 1.0]},
        "forward": "forward(images: Tensor[N,1,H,W] float in [0,1], M: int, K: int) -> Tensor[N,M,K,H,W] probabilities (softmax over K)",
        "head": getattr(net, "head_kind", "unknown"),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "training": {"trained": False},
    }
    meta.update(extra)
    return meta


def save_torchscript(net: torch.nn.Module, path: Union[str, Path], metadata: Dict[str, Any]) -> Path:
    """Script ``net`` and write it atomically to ``path`` with ``metadata`` inside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net = net.eval().cpu()
    scripted = torch.jit.script(net)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(metadata, indent=2)})
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    net.train(was_training)
    return path


def load_torchscript(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a model file -> (scripted module in eval mode on ``device``, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError subclasses with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a readable TorchScript model ({first})") from None
    return module.eval(), check_metadata(path, extra[METADATA_FILE])
