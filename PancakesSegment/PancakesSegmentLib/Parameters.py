"""Run settings shared by the logic and the widget, with their defaults and limits.

The widget keeps these in its parameter node (and QSettings, across restarts);
the logic receives a plain ``RunSettings`` so it never depends on either.

Usage::

    settings = RunSettings(protocols=8, labels=12, device="cpu").validated()
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from pancakes.errors import PancakesInputError

DEFAULT_PROTOCOLS = 8  # M: the paper's default number of protocols
DEFAULT_LABELS = 20  # K: labels per protocol
MAX_PROTOCOLS = 64  # the limits the engine accepts (pancakes.engine.check_mk)
MAX_LABELS = 255
DEVICES = ("auto", "cpu", "cuda")
AXES = ("axial", "coronal", "sagittal")
DEFAULT_DEVICE = "auto"
DEFAULT_AXIS = "axial"
DEFAULT_ADAPT = True  # decode-time prototype adaptation (pancakes.engine.DEFAULT_ADAPT strength when on)


@dataclass(frozen=True)
class RunSettings:
    """What one run needs besides the volumes: M, K, device, slicing axis and decode-time adaptation."""

    protocols: int = DEFAULT_PROTOCOLS
    labels: int = DEFAULT_LABELS
    device: str = DEFAULT_DEVICE
    axis: str = DEFAULT_AXIS
    adapt: bool = DEFAULT_ADAPT

    def validated(self) -> "RunSettings":
        """The same settings, checked; raises PancakesInputError naming the bad one."""
        for name, value, high in (("protocols", self.protocols, MAX_PROTOCOLS), ("labels", self.labels, MAX_LABELS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise PancakesInputError(f"{name}={value!r}: must be an integer in 1..{high}")
        device = str(self.device).lower()
        if device == "gpu":
            device = "cuda"
        if device not in DEVICES and not device.startswith("cuda:"):
            raise PancakesInputError(f"device {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.axis not in AXES:
            raise PancakesInputError(f"axis {self.axis!r}: use one of {', '.join(AXES)}")
        if not isinstance(self.adapt, bool):
            raise PancakesInputError(f"adapt={self.adapt!r}: must be True or False")
        return replace(self, device=device)
