"""Pancakes core: model, engine, protocols, metrics. Imports neither slicer nor qt."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Pancakes", "Refiner", "metrics", "protocols", "__version__"]
# Submodules reachable as attributes of a plain `import pancakes` (the README uses
# pancakes.protocols and pancakes.metrics); neither imports torch.
_LAZY_SUBMODULES = ("protocols", "metrics")


def __getattr__(name: str):
    # Lazy so that `import pancakes.protocols` stays light (no torch import)
    # inside Slicer and in tools that only need names and colours.
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name == "Pancakes":
        from .engine import Pancakes

        return Pancakes
    if name == "Refiner":
        from .refine import Refiner

        return Refiner
    raise AttributeError(name)
