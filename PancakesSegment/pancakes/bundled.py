"""Finding the shipped model files, wherever the package was installed."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelFileError


def find_bundled(file_name: str, env_var: str, what: str) -> Path:
    """$env_var, else model_weights/<file_name> in the source tree, the installed Slicer module or a wheel."""
    package = Path(__file__).resolve().parent  # .../pancakes
    candidates = [Path(os.environ[env_var])] if os.environ.get(env_var) else []
    candidates += [
        package.parents[1] / "model_weights" / file_name,  # source checkout / editable install
        package.parent / "Resources" / "model_weights" / file_name,  # installed Slicer module
        package / "model_weights" / file_name,  # wheel with bundled data
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise ModelFileError(f"no bundled {what} found (looked in " + ", ".join(str(c) for c in candidates) + "); pass path=")


def bundled_model_path() -> Path:
    """Where the shipped model lives: $PANCAKES_MODEL, the source tree, or the Slicer module."""
    return find_bundled("pancakes.pt", "PANCAKES_MODEL", "model")
