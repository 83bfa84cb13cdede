"""The feature network f of the paper: a small 2D UNet with PReLU."""
from __future__ import annotations

from typing import List

import torch
from torch import nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with PReLU; keeps the spatial size."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.act1 = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act2 = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))))


class UNet(nn.Module):
    """UNet with ``levels`` resolutions and ``features`` channels at every level.

    forward(x: [N, in_ch, H, W]) -> phi: [N, features, H, W]. H and W must be
    divisible by 2**(levels-1); the engine pads images to guarantee it.
    Zero padding in the convolutions lets the net infer position from the border,
    which is why training augments with shifts and crops.
    """

    def __init__(self, in_ch: int = 1, features: int = 32, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        ch = in_ch
        for _ in range(levels):
            self.down.append(ConvBlock(ch, features))
            ch = features
        for _ in range(levels - 1):
            self.up.append(ConvBlock(2 * features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i, block in enumerate(self.up):
            skip = skips[len(skips) - 2 - i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return x
