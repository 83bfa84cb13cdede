"""Click refinement of a chosen Pancakes label (paper §5, ScribblePrompt-style).

Usage::

    from pancakes import Refiner
    refiner = Refiner.load()                       # model_weights/refine.pt
    mask = refiner.refine(image, seed_mask, positive=[(40, 52)], negative=[(10, 9)])
"""
from __future__ import annotations

__all__ = ["Refiner"]


def __getattr__(name: str):
    # Lazy: training and tests import submodules (clicks, seeds) without the API's imports.
    if name == "Refiner":
        from .refiner import Refiner

        return Refiner
    raise AttributeError(name)
