"""Labels at the image's own size from model-size logits, without upsampling every logit map.

The labels we want are ``argmax_k bilinear(logits)[k]`` at the output size. Upsampling
all P*K logit maps first (160 maps at M=8, K=20) dominated decoding of large volumes.
Bilinear interpolation is a convex combination of the four nearest model-size pixels,
so where those four share one argmax label, the interpolated argmax is that label too
(if l_a >= l_j at each of the four, it holds for any convex mix). Only output pixels
whose four sources disagree, the pixels along label boundaries, need their K logits
interpolated. The result equals upsample-then-argmax up to floating-point ties.
"""
from __future__ import annotations

from typing import Tuple

import torch

# Boundary pixels interpolated at once: 4 taps x K floats each, ~20 MB at K = 20. Smaller
# chunks keep the blend's temporaries from being fresh large allocations: on the 2-core
# CPU, 16k-64k pixels took 47-49 ms per 256x256 slice against 55 at 131k and 84 at 524k.
CHUNK_PIXELS = 65_536


def bilinear_taps(n_in: int, n_out: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source taps of F.interpolate(mode="bilinear", align_corners=False) along one axis.

    -> (i0, i1, w1), each [n_out]: output index j reads input i0[j] with weight
    1 - w1[j] and input i1[j] with weight w1[j]. Same arithmetic as PyTorch (float32).
    """
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float32, device=device) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).clamp(0, 1)


def label_dtype(k: int) -> torch.dtype:
    """Smallest integer type that holds the 1-based labels 1..k (uint8 up to 255 labels)."""
    return torch.uint8 if k < 256 else torch.int16


def upsampled_argmax(logits: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
    """logits [B, P, K, h, w] -> 0-based labels [B, P, H, W] of the bilinearly resized logits.

    Equivalent to ``F.interpolate(logits.reshape(B, P*K, h, w), shape, "bilinear").argmax(K)``
    but interpolates logits only where the four source pixels' labels differ. The labels come
    in ``label_dtype(K)`` (uint8 for K < 256): gathering int64 labels to the output size cost
    3x the time of gathering bytes, at 8x the memory.
    """
    b, p, k, h, w = logits.shape
    rows, cols = shape
    # torch.max(...).indices, not argmax: ~4x faster over a non-innermost dim on CPU.
    low = torch.max(logits, 2).indices.to(label_dtype(k))  # [B, P, h, w]
    if (h, w) == (rows, cols):
        return low
    dev = logits.device
    y0, _, wy = bilinear_taps(h, rows, dev)  # the corner rows clamp the second tap themselves
    x0, _, wx = bilinear_taps(w, cols, dev)
    # A cell (i, j) is "uniform" when labels at (i, j), (i, j+1), (i+1, j), (i+1, j+1)
    # agree; replicate-padding the last row and column mirrors the clamped taps there.
    pad = torch.cat([low, low[..., -1:, :]], dim=-2)
    pad = torch.cat([pad, pad[..., -1:]], dim=-1)
    mixed = ((pad[..., :-1, :-1] != pad[..., :-1, 1:]) | (pad[..., :-1, :-1] != pad[..., 1:, :-1])
             | (pad[..., :-1, :-1] != pad[..., 1:, 1:]))  # [B, P, h, w]
    out = low[:, :, y0][:, :, :, x0]  # [B, P, H, W]
    todo = mixed[:, :, y0][:, :, :, x0].reshape(-1).nonzero().squeeze(1)  # flat output indices
    if todo.numel() == 0:
        return out
    corners, cell_of = _mixed_cell_corners(logits, mixed)
    flat_out = out.view(-1)
    for start in range(0, todo.numel(), CHUNK_PIXELS):
        idx = todo[start : start + CHUNK_PIXELS]
        c = idx % cols
        r = (idx // cols) % rows
        cell = cell_of[(idx // (rows * cols)) * (h * w) + y0[r] * w + x0[c]]
        # index_select on the compact corner rows: ~10x faster than advanced indexing of the logits.
        top, right = corners[0].index_select(0, cell), corners[1].index_select(0, cell)
        bottom, corner = corners[2].index_select(0, cell), corners[3].index_select(0, cell)
        ay, ax = wy[r, None], wx[c, None]
        # In place, in PyTorch's order of operations, so the sums equal F.interpolate's bit for bit.
        top = top.mul_(1 - ax).add_(right.mul_(ax))
        bottom = bottom.mul_(1 - ax).add_(corner.mul_(ax))
        flat_out[idx] = top.mul_(1 - ay).add_(bottom.mul_(ay)).argmax(1).to(out.dtype)
    return out


def _mixed_cell_corners(logits: torch.Tensor, mixed: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The K logits at the four corners of each mixed cell, and where each cell's row is.

    logits [B, P, K, h, w], mixed [B, P, h, w] bool -> (corners [4, n, K] for the n mixed cells, in
    the order (i, j), (i, j+1), (i+1, j), (i+1, j+1) with the last row and column clamped;
    cell_of [B*P*h*w] int64: a cell's row in ``corners``, -1 where the cell is uniform).
    Only a few percent of cells are mixed, so this copies far less than transposing all logits.
    """
    b, p, k, h, w = logits.shape
    cells = mixed.reshape(-1).nonzero().squeeze(1)
    bp, i, j = cells // (h * w), (cells // w) % h, cells % w
    i1, j1 = (i + 1).clamp(max=h - 1), (j + 1).clamp(max=w - 1)
    maps = logits.reshape(b * p, k, h, w)
    corners = torch.stack([maps[bp, :, i, j], maps[bp, :, i, j1], maps[bp, :, i1, j], maps[bp, :, i1, j1]])
    cell_of = torch.full((b * p * h * w,), -1, dtype=torch.int64, device=logits.device)
    cell_of[cells] = torch.arange(cells.numel(), device=logits.device)
    return corners, cell_of
