"""Which PyTorch the module needs, and whether the installed one will do (no Qt; torch imported only if present).

Slicer 5.6 and 5.8 embed Python 3.9, for which torch 2.8 is the newest release;
Slicer 5.10 and later embed Python 3.12. The bundled TorchScript files
(pancakes.pt, refine.pt) load and give the same labels under torch 2.8 as under
the torch that saved them (scripts/check_old_torch.sh), so 2.8 is the oldest
supported torch. The panel passes TORCH_REQUIREMENT to PyTorchUtils.installTorch
and refuses older installs with torchProblem()'s message.

Usage::

    problem = torchProblem()
    if problem:
        statusLabel.text = problem
"""
from __future__ import annotations

import importlib.util
import re
from typing import Optional, Tuple

MINIMUM_TORCH = (2, 8)
TORCH_REQUIREMENT = ">=2.8"


def parseVersion(version: str) -> Optional[Tuple[int, int]]:
    """(major, minor) of a torch version string such as '2.8.0+cu128'; None if unreadable."""
    match = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def versionProblem(version: str) -> Optional[str]:
    """Why torch ``version`` cannot run Pancakes, or None when it can."""
    parsed = parseVersion(version)
    if parsed is None:
        return f"PyTorch reports an unreadable version '{version}'; Pancakes needs torch {TORCH_REQUIREMENT}."
    if parsed < MINIMUM_TORCH:
        return (f"PyTorch {version} is too old for Pancakes (it needs torch {TORCH_REQUIREMENT}). "
                "Update it in the PyTorch Utils module, restart Slicer, and try again.")
    return None


def torchProblem() -> Optional[str]:
    """Why Pancakes cannot use PyTorch here (missing, broken or too old), or None when it can."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError) as error:  # a half-imported torch (sys.modules entry None)
        return f"PyTorch is installed but cannot be imported: {error}"
    if spec is None:
        return ("Pancakes needs PyTorch, which is not installed. Install it with the PyTorch extension "
                "(PyTorch Utils module), or press Run to be offered the install.")
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - a broken install (missing CUDA libraries, ...) reads as a message
        return f"PyTorch is installed but cannot be imported: {error}"
    return versionProblem(getattr(torch, "__version__", ""))
