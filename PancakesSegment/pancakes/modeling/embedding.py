"""The protocol embedding e(r_m) = u_m || u_k (paper eqs. 3-4)."""
from __future__ import annotations

import math

import torch


def position(index: int, n: int) -> float:
    """Position t in [0, 1] of ``index`` among ``n`` items, as the public code uses.

    The public code divides by n - 1, undefined for n = 1; a lone protocol or
    label sits at t = 0, the same place the first of several would.
    """
    if n < 1 or index < 0 or index >= n:
        raise ValueError(f"index {index} is outside 0..{n - 1}")
    if n == 1:
        return 0.0
    return index / (n - 1)


def sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """u_t of eq. 3-4 for positions t: [P] -> [P, dim].

    Frequencies 2**(2j/J)*pi spread over ``dim``/2 octave-like steps so that
    nearby positions stay close and distant ones separate.
    """
    half = dim // 2
    j = torch.arange(half, dtype=torch.float32, device=t.device)
    z = t[:, None] * torch.pow(2.0, 2.0 * j / half)[None, :] * math.pi
    out = torch.empty(t.shape[0], dim, dtype=torch.float32, device=t.device)
    out[:, 0::2] = torch.sin(z + math.pi / 2)
    out[:, 1::2] = torch.sin(z - math.pi / 2)
    return out


def protocol_embedding(M: int, K: int, dim: int = 16, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """v_{m,k} = u_m || u_k for every (m, k): -> [M, K, 2*dim].

    The position alone does not tell M and K apart (t = 1 is the last label at
    any K), so the embedding also carries 1/M and 1/K: without them "label 3 of
    5" and "label 3 of 9" could not differ.
    """
    if M < 1 or K < 1:
        raise ValueError(f"need M >= 1 and K >= 1, got M={M}, K={K}")
    # t = index / (n - 1), with n = 1 mapped to t = 0 (see position()).
    tm = torch.arange(M, dtype=torch.float32, device=device) / float(max(M - 1, 1))
    tk = torch.arange(K, dtype=torch.float32, device=device) / float(max(K - 1, 1))
    um = sinusoid(tm, dim)
    uk = sinusoid(tk, dim)
    v = torch.cat([um[:, None, :].expand(M, K, dim), uk[None, :, :].expand(M, K, dim)], dim=-1)
    scale = torch.tensor([1.0 / M, 1.0 / K], dtype=torch.float32, device=device)
    return torch.cat([v, scale.expand(M, K, 2)], dim=-1)


def embedding_dim(dim: int = 16) -> int:
    """Length of one v_{m,k} returned by :func:`protocol_embedding`."""
    return 2 * dim + 2
