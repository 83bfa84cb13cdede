"""The refiner's network frozen and optimised for CPU inference.

Why (issue 21, the 150 ms an update): an update runs the 38k-parameter UNet eight times on CPU (four flips,
twice with the focus crop), and those passes are most of its time. ``torch.jit.freeze`` inlines the weights
as constants and ``torch.jit.optimize_for_inference`` fuses and re-lays the convolutions for the CPU
backend: on these machines one 128 x 128 pass went from about 16.5 to 12 ms (median, 2 threads), with logits
equal to within 2e-5. The weights themselves are untouched (the Refiner keeps the loaded module for them).

Only TorchScript modules on the CPU are frozen. Anything else (an eager module, a test's stand-in, a CUDA
module, or a torch that cannot freeze this file) is used as it is: freezing is a speed-up, never a
requirement. Given an example input, the frozen copy must also run on it and give the module's own logits
(to within 1e-3), or the module is used as it is: an older torch (Slicer's) might freeze without complaint
and fail only at the first click.

Example::

    net = frozen_for_inference(module, torch.device("cpu"), example)   # x [B, 5, S, S] -> logits [B, 1, S, S]
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch


def frozen_for_inference(module: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                         example: Optional[torch.Tensor] = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` frozen and optimised for CPU inference, or ``module`` itself where that does not apply or
    where the frozen copy does not reproduce ``module``'s output on ``example`` (an input [B, C, S, S])."""
    if device.type != "cpu" or not isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # freezing's own deprecation notes are not the user's concern
            fast = torch.jit.optimize_for_inference(torch.jit.freeze(module.eval()))
            if example is not None:
                with torch.no_grad():
                    if not torch.allclose(fast(example), module(example), atol=1e-3, rtol=1e-3):
                        return module
    except Exception:  # noqa: BLE001 - an older or newer torch that cannot freeze or run it: run it unfrozen
        return module
    return fast
