"""Widen a trained refiner without changing what it computes, so a wider one starts where it stands.

    wide = widen_refine_net(small_net, features=24)   # same logits as small_net, more channels

Trained from scratch on CPU, a wider refiner cannot catch up with the shipped one within a
session (model card: 977 iterations in 40 minutes, far behind). Widening keeps every old
channel and adds new ones whose weights into the old channels start at zero: the old channels
compute exactly what they did, so the wide network's output equals the small one's, and
training only has to find a use for the new channels. Their own input weights keep PyTorch's
default initialisation, so their activations, and the gradients of the zeroed weights, are
not zero. Works because the UNet has no normalisation layers that would mix channels.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from ...modeling.refine_net import RefineNet


def _channel_map(parts: int, old: int, new: int) -> List[int]:
    """Where each old channel sits in the wide layer: ``parts`` concatenated blocks of ``old``
    channels (the UNet's up blocks read [upsampled, skip]) become blocks of ``new``."""
    return [p * new + c for p in range(parts) for c in range(old)]


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, in_map: List[int], out_map: List[int]) -> None:
    """Old weights into their places; the new input channels feed no old output channel."""
    with torch.no_grad():
        rows = torch.tensor(out_map)
        dst.weight[rows] = 0.0  # old outputs: zero from every input first...
        dst.weight[rows[:, None], torch.tensor(in_map)] = src.weight  # ...then the old weights back
        dst.bias[rows] = src.bias


def _copy_prelu(dst: nn.PReLU, src: nn.PReLU, out_map: List[int]) -> None:
    with torch.no_grad():
        dst.weight[torch.tensor(out_map)] = src.weight


def widen_refine_net(small: RefineNet, features: int, seed: int = 0) -> RefineNet:
    """A RefineNet with ``features`` channels per level (≥ small's) that computes the same logits
    [N, 1, H, W] as ``small`` for every input [N, 5, H, W]; new channels' own weights drawn with
    ``seed``."""
    if features < small.features:
        raise ValueError(f"features: {features} is narrower than the network's {small.features}")
    torch.manual_seed(seed)
    wide = RefineNet(features, small.levels)
    old, new = small.features, features
    same = _channel_map(1, old, new)
    inputs = list(range(small.unet.down[0].conv1.in_channels))
    for i, (d, s) in enumerate(zip(wide.unet.down, small.unet.down)):
        _copy_conv(d.conv1, s.conv1, inputs if i == 0 else same, same)
        _copy_conv(d.conv2, s.conv2, same, same)
        _copy_prelu(d.act1, s.act1, same)
        _copy_prelu(d.act2, s.act2, same)
    for d, s in zip(wide.unet.up, small.unet.up):
        _copy_conv(d.conv1, s.conv1, _channel_map(2, old, new), same)
        _copy_conv(d.conv2, s.conv2, same, same)
        _copy_prelu(d.act1, s.act1, same)
        _copy_prelu(d.act2, s.act2, same)
    _copy_conv(wide.head, small.head, same, [0])
    with torch.no_grad():
        wide.gain.copy_(small.gain)
    return wide
