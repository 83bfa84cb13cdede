"""Choosing the torch device from a user's 'auto' | 'cpu' | 'cuda'."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .errors import PancakesInputError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA without it is an error."""
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise PancakesInputError(f"device {device!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
        return torch.device("cuda" if name == "gpu" else name)
    raise PancakesInputError(f"device {device!r}: use 'auto', 'cpu' or 'cuda'")


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
    """The caller's batch size, or the device's default for None.

    Zero, negative or fractional sizes are refused: a negative step made the slice
    loops run zero times, so volumes came back all background without a word.
    """
    if batch_size is None:
        return default_batch_size(device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise PancakesInputError(f"batch_size={batch_size!r}: must be a whole number >= 1, or None for the default")
    return int(batch_size)
