"""Run settings shared by the logic and the widget: M, K, device, axis, adaptation, coarse protocol, superpixels.

Limits, defaults and checks come from pancakes.contract (torch-free), the same the
CLI and the engine use. Inside Slicer, ``RunSettings`` is a ``parameterPack`` (Slicer's
parameterNodeWrapper): the widget's parameter node holds one, its fields are bound to
the panel's controls, and the logic receives it as it is. Outside Slicer (plain pytest,
scripts) the same class is a plain dataclass, so the logic never depends on Slicer's GUI.

Usage::

    settings = RunSettings(protocols=8, labels=12, device="cpu").validated()
"""
from __future__ import annotations

import dataclasses
from typing import Annotated

from pancakes.contract import (AXES, DEFAULT_AXIS, DEFAULT_COARSE, DEFAULT_DEVICE, DEFAULT_LABELS, DEFAULT_PROTOCOLS,
                               DEFAULT_SUPERPIXELS, DEVICES, MAX_LABELS, MAX_PROTOCOLS, check_axis, check_device,
                               check_mk)
from pancakes.errors import PancakesInputError

DEFAULT_ADAPT = True  # decode-time prototype adaptation (pancakes.contract.DEFAULT_ADAPT strength when on)
AXIS_NAMES = tuple(AXES)

__all__ = ["AXIS_NAMES", "DEFAULT_ADAPT", "DEFAULT_AXIS", "DEFAULT_COARSE", "DEFAULT_DEVICE", "DEFAULT_LABELS",
           "DEFAULT_PROTOCOLS", "DEVICES", "MAX_LABELS", "MAX_PROTOCOLS", "RunSettings", "slicerParameterPack"]


def slicerParameterPack(cls):
    """Slicer's ``parameterPack`` with range and choice validators, where Slicer is running; a dataclass elsewhere.

    slicer.parameterNodeWrapper exists only inside the Slicer application (it needs Qt),
    so it is imported here, guarded, instead of at module level.
    """
    try:
        from slicer.parameterNodeWrapper import Choice, WithinRange, parameterPack
    except ImportError:
        return dataclasses.dataclass(cls)
    validators = {"protocols": WithinRange(1, MAX_PROTOCOLS), "labels": WithinRange(1, MAX_LABELS),
                  "device": Choice(list(DEVICES)), "axis": Choice(list(AXIS_NAMES))}
    cls.__annotations__ = {name: Annotated[_TYPES[name], validators[name]] if name in validators else _TYPES[name]
                           for name in cls.__annotations__}
    return parameterPack(cls)


_TYPES = {"protocols": int, "labels": int, "device": str, "axis": str, "adapt": bool, "coarse": bool,
          "superpixels": bool}


@slicerParameterPack
class RunSettings:
    """What one run needs besides the volumes: M, K, device, slicing axis, decode-time adaptation, and whether
    the last protocol is merged into figure and ground (pancakes.coarse_protocol), and whether label boundaries
    follow each slice's edges (pancakes.superpixel_pooling)."""

    protocols: int = DEFAULT_PROTOCOLS
    labels: int = DEFAULT_LABELS
    device: str = DEFAULT_DEVICE
    axis: str = DEFAULT_AXIS
    adapt: bool = DEFAULT_ADAPT
    coarse: bool = DEFAULT_COARSE
    superpixels: bool = DEFAULT_SUPERPIXELS

    def validated(self) -> "RunSettings":
        """A checked copy (device names normalised: 'GPU' -> 'cuda'); raises PancakesInputError naming the bad one.

        A copy, not self: inside Slicer self is bound to the parameter node, and a run must
        not change when the user edits the panel while it runs.
        """
        for name, value in (("protocols", self.protocols), ("labels", self.labels)):
            if not isinstance(value, int):  # the contract takes numpy integers too; the panel gives ints only
                raise PancakesInputError(f"{name}={value!r}: must be an integer in 1..{MAX_PROTOCOLS if name == 'protocols' else MAX_LABELS}")
        protocols, labels = check_mk(self.protocols, self.labels)
        check_axis(self.axis)
        for name, value in (("adapt", self.adapt), ("coarse", self.coarse), ("superpixels", self.superpixels)):
            if not isinstance(value, bool):
                raise PancakesInputError(f"{name}={value!r}: must be True or False")
        return RunSettings(protocols, labels, check_device(self.device), str(self.axis), bool(self.adapt),
                           bool(self.coarse), bool(self.superpixels))
