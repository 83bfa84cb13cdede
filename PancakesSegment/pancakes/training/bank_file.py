"""The slice bank's .npz file: written atomically, read back with a format check.

Kept apart from real_slicing (which needs SimpleITK to cut volumes) so that training
on an already built bank, e.g. on a GPU machine without SimpleITK, imports only numpy.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import numpy as np

BANK_FORMAT = 1


def save_arrays(arrays: Dict[str, np.ndarray], path: Path) -> None:
    """Write a bank atomically (a crash never leaves a truncated .npz behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_arrays(path: Path, size: int) -> Dict[str, np.ndarray]:
    """Read a bank; raises ValueError when it is of another format or slice size."""
    with np.load(Path(path), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if int(arrays.get("format", -1)) != BANK_FORMAT or int(arrays.get("size", -1)) != size:
        raise ValueError(f"slice bank {path} has format {arrays.get('format')} / size "
                         f"{arrays.get('size')}, expected {BANK_FORMAT} / {size}")
    return arrays
