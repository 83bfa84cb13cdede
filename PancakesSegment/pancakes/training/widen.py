"""Widen a trained network without changing what it computes, so a wider one starts where it stands.

    wide = widen_refine_net(small_refiner, features=24)    # same logits, more channels per level
    wide = widen_pancakes_net(small_pancakes, features=48)  # same protocols, wider UNet

Trained from scratch, a wider network cannot catch up with the shipped one within a CPU
session (model card: a 196k-parameter refiner reached 977 iterations in 40 minutes, far
behind), nor in a GPU lease of 9 minutes. Widening keeps every old channel and adds new ones
whose weights into the old channels start at zero: the old channels compute exactly what
they did, so the wide network's output equals the small one's, and training only has to find
a use for the new channels. Their own input weights keep PyTorch's default initialisation,
so their activations, and the gradients of the zeroed weights, are not zero. This works
because the UNet has no normalisation layer that would mix channels.
"""
from __future__ import annotations

import copy
from typing import List

import torch
from torch import nn

from ..modeling.pancakes_net import PancakesNet
from ..modeling.refine_net import RefineNet
from ..modeling.unet import UNet


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


def _widen_unet_into(wide: UNet, small: UNet, old: int, new: int) -> None:
    """Copy ``small`` (``old`` features per level) into the freshly initialised ``wide`` (``new``)."""
    same = _channel_map(1, old, new)
    inputs = list(range(small.down[0].conv1.in_channels))
    for i, (d, s) in enumerate(zip(wide.down, small.down)):
        _copy_conv(d.conv1, s.conv1, inputs if i == 0 else same, same)
        _copy_conv(d.conv2, s.conv2, same, same)
        _copy_prelu(d.act1, s.act1, same)
        _copy_prelu(d.act2, s.act2, same)
    for d, s in zip(wide.up, small.up):
        _copy_conv(d.conv1, s.conv1, _channel_map(2, old, new), same)
        _copy_conv(d.conv2, s.conv2, same, same)
        _copy_prelu(d.act1, s.act1, same)
        _copy_prelu(d.act2, s.act2, same)


def _check(old: int, new: int) -> None:
    if new < old:
        raise ValueError(f"features: {new} is narrower than the network's {old}")


def widen_refine_net(small: RefineNet, features: int, seed: int = 0) -> RefineNet:
    """A RefineNet with ``features`` channels per level (≥ small's) that computes the same logits
    [N, 1, H, W] as ``small`` for every input [N, 5, H, W]; new channels' own weights drawn with
    ``seed``."""
    _check(small.features, features)
    torch.manual_seed(seed)
    wide = RefineNet(features, small.levels)
    _widen_unet_into(wide.unet, small.unet, small.features, features)
    _copy_conv(wide.head, small.head, _channel_map(1, small.features, features), [0])
    with torch.no_grad():
        wide.gain.copy_(small.gain)
    return wide


def widen_pancakes_net(small: PancakesNet, features: int, seed: int = 0) -> PancakesNet:
    """A PancakesNet whose UNet has ``features`` channels per level (≥ small's) and that gives the
    same logits [N, M, K, H, W] as ``small`` for every image: the head reads the old phi channels
    and the image as before, the new phi channels through zeroed key weights."""
    if small.head_kind != "dot":
        raise ValueError(f"only the dot-product head can be widened, not {small.head_kind!r}")
    old = small.unet.down[0].conv2.out_channels
    _check(old, features)
    torch.manual_seed(seed)
    wide = PancakesNet(features, small.unet.levels, small.emb_half, small.head_kind, small.head.hidden)
    _widen_unet_into(wide.unet, small.unet, old, features)
    head = copy.deepcopy(small.head)
    first = head.key[0]  # phi (old channels) then the image -> phi (features channels) then the image
    wider_first = nn.Conv2d(features + 1, first.out_channels, 1)
    _copy_conv(wider_first, first, list(range(old)) + [features], list(range(first.out_channels)))
    head.key[0] = wider_first
    wide.head = head
    return wide
