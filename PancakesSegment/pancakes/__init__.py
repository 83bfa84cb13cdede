"""Pancakes core: model, engine, protocols, metrics. Imports neither slicer nor qt."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Pancakes", "Refiner", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import pancakes.protocols` stays light (no torch import)
    # inside Slicer and in tools that only need names and colours.
    if name == "Pancakes":
        from .engine import Pancakes

        return Pancakes
    if name == "Refiner":
        from .refine import Refiner

        return Refiner
    raise AttributeError(name)
