"""The click refinement network: a small UNet over image, seed, clicks and previous prediction.

Input channels (all [N, 1, 128, 128], values in [0, 1]):
  0 image (normalised), 1 seed mask, 2 positive-click map, 3 negative-click map,
  4 previous prediction as a probability (the seed itself before the first step).
Output: one logit map [N, 1, 128, 128].

The output adds ``gain * (2 * previous - 1)`` to the UNet's head, so an untrained
network already returns the previous prediction and training only has to learn the
corrections clicks ask for: a few thousand CPU steps suffice for that, not for
learning the whole mask from scratch.
"""
from __future__ import annotations

import torch
from torch import nn

from .unet import UNet

IN_CHANNELS = 5
PREVIOUS_CHANNEL = 4


class RefineNet(nn.Module):
    """UNet(5 -> features) + 1x1 conv to one logit, plus a skip from the previous prediction."""

    def __init__(self, features: int = 16, levels: int = 4) -> None:
        super().__init__()
        self.features = features
        self.levels = levels
        self.unet = UNet(IN_CHANNELS, features, levels)
        self.head = nn.Conv2d(features, 1, 1)
        # Logit scale of the previous-prediction skip; 3 maps a certain pixel to p ~ 0.95.
        self.gain = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 5, H, W] (H, W divisible by 2**(levels-1)) -> logits [N, 1, H, W]."""
        previous = x[:, 4:5]  # PREVIOUS_CHANNEL (TorchScript cannot read module globals)
        return self.head(self.unet(x)) + self.gain * (2.0 * previous - 1.0)
