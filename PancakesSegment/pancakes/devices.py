"""Choosing the torch device from a user's 'auto' | 'cpu' | 'cuda' (names checked by pancakes.contract)."""
from __future__ import annotations

from typing import Optional

import torch

from .contract import check_batch_size, check_device
from .errors import PancakesInputError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA without it is an error."""
    name = check_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise PancakesInputError(f"device {device!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """Human-readable device name, e.g. 'CPU' or 'GPU: NVIDIA H100'."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return "CPU"


def default_batch_size(device: torch.device) -> int:
    """Slices per UNet forward pass when the caller does not say.

    On CPU, 4 slices at 128^2 keep the activations (~8 MB per layer) in cache and run
    ~1.7x faster per slice than 16 (benchmarks/README.md); a GPU wants large batches.
    """
    return 32 if device.type == "cuda" else 4


def batch_size_for(device: torch.device, batch_size: Optional[int] = None) -> int:
    """The caller's batch size (checked by pancakes.contract.check_batch_size), or the device's default for None."""
    checked = check_batch_size(batch_size)
    return default_batch_size(device) if checked is None else checked
