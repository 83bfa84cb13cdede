"""Protocol heads h: one logit per (m, k) and pixel from phi || v_{m,k}.

Two heads share one signature, ``forward(phi: [N, C, H, W], v: [P, E]) -> [N, P, H, W]``
where P is the number of (m, k) pairs asked for:

* :class:`DotProductHead` (shipped): the (m, k)-independent work runs once per
  pixel and the (m, k)-dependent work once per pair, so the per-pair cost is a
  single dot product per pixel.
* :class:`FaithfulHead` (reference for benchmarks): the paper's three 3x3
  convolutions on phi || v per pair at full resolution, ~80 GMAC per 128^2 image at
  M=8, K=20.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DotProductHead(nn.Module):
    """logit[n, p] = scale * cos(g(phi)[n], w(v_p)): a cosine classifier per (m, k).

    g is a small per-pixel network on phi (two 1x1 convs: the UNet already gives
    spatial context, and a 3x3 here would double the head's cost); w comes from
    an MLP on the embedding v_{m,k}. Because v_{m,k} is constant over the image,
    a concatenate-then-convolve head reduces to this form for its first layer;
    keeping the nonlinearity on the pixel side makes every pair cost one matrix
    product.

    Both sides are L2-normalised and there is no per-(m, k) bias. With a plain
    dot product plus bias, the bias dominated at initialisation: one label won
    every pixel, soft Dice gave almost no gradient, and training collapsed to one
    label per protocol (DESIGN.md records the same collapse). A cosine with a
    learnt temperature keeps every label reachable by content from step one.
    """

    def __init__(self, phi_ch: int = 32, emb_dim: int = 34, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.key = nn.Sequential(
            nn.Conv2d(phi_ch, hidden, 1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 1),
        )
        self.query = nn.Sequential(
            nn.Linear(emb_dim, 128),
            nn.PReLU(128),
            nn.Linear(128, 128),
            nn.PReLU(128),
            nn.Linear(128, hidden),
        )
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # temperature e^2.3 ~ 10

    def keys(self, phi: torch.Tensor) -> torch.Tensor:
        """Per-pixel unit keys g(phi): [N, C, H, W] -> [N, hidden, H, W]."""
        return F.normalize(self.key(phi), dim=1, eps=1e-6)

    def logits_from_keys(self, keys: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """keys: [N, hidden, H, W], v: [P, E] -> logits [N, P, H, W]."""
        # Capped temperature: a growing one saturates the softmax, and saturated
        # labels get no Dice gradient (p(1-p) ~ 0), which lets one label take over.
        w = F.normalize(self.query(v), dim=1, eps=1e-6) * self.log_scale.clamp(max=2.08).exp()
        n, c, h, wd = keys.shape
        out = torch.matmul(w, keys.reshape(n, c, h * wd))  # [N, P, HW]
        return out.reshape(n, w.shape[0], h, wd)

    def adapted_logits(self, keys: torch.Tensor, v: torch.Tensor, K: int, strength: float) -> torch.Tensor:
        """Logits after one step of per-image prototype adaptation: keys [N, hidden, H, W],
        v [P*K, E] (K labels per protocol, protocol-major) -> logits [N, P*K, H, W].

        Each label's query is pulled toward the mean key of the pixels it wins in this
        image (soft, softmax over the protocol's K labels), then the image is labelled
        again: q'_k = normalise(q_k + strength * normalise(sum_x p_k(x) key(x))).
        Why: a fixed query that sits between two clusters of keys splits a structure one
        way in one image and another way in the next; moving it to the centre of what it
        already wins makes the split follow the structure. On the dev sets this raised
        Set Dice at S=5 and brought unused labels back (MODEL_CARD.md). Images are
        adapted independently, so results do not depend on batch size or set size.
        """
        logits = self.logits_from_keys(keys, v)  # [N, PK, H, W]
        if strength <= 0:
            return logits
        n, c, h, wd = keys.shape
        pk = logits.shape[1]
        flat = keys.reshape(n, c, h * wd)
        soft = torch.softmax(logits.reshape(n, pk // K, K, h * wd), dim=2).reshape(n, pk, h * wd)
        protos = F.normalize(torch.bmm(soft, flat.transpose(1, 2)), dim=2, eps=1e-6)  # [N, PK, hidden]
        q = F.normalize(F.normalize(self.query(v), dim=1, eps=1e-6)[None] + strength * protos, dim=2, eps=1e-6)
        return torch.bmm(q * self.log_scale.clamp(max=2.08).exp(), flat).reshape(n, pk, h, wd)

    def forward(self, phi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.logits_from_keys(self.keys(phi), v)


class FaithfulHead(nn.Module):
    """The paper's head: three 3x3 convs (``hidden`` features, PReLU) on phi || v per pair.

    Pairs are processed ``chunk`` at a time so memory stays bounded; it is still
    slow by design, as the benchmark shows.
    """

    def __init__(self, phi_ch: int = 32, emb_dim: int = 34, hidden: int = 32, chunk: int = 8) -> None:
        super().__init__()
        self.chunk = chunk
        self.net = nn.Sequential(
            nn.Conv2d(phi_ch + emb_dim, hidden, 3, padding=1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def keys(self, phi: torch.Tensor) -> torch.Tensor:
        """No per-pixel precomputation is possible in the faithful head."""
        return phi

    def logits_from_keys(self, keys: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """keys (= phi): [N, C, H, W], v: [P, E] -> logits [N, P, H, W]."""
        n, c, h, w = keys.shape
        outs = []
        for start in range(0, v.shape[0], self.chunk):
            vc = v[start : start + self.chunk]
            p = vc.shape[0]
            phi_rep = keys[:, None].expand(n, p, c, h, w)
            v_rep = vc[None, :, :, None, None].expand(n, p, vc.shape[1], h, w)
            x = torch.cat([phi_rep, v_rep], dim=2).reshape(n * p, c + vc.shape[1], h, w)
            outs.append(self.net(x).reshape(n, p, h, w))
        return torch.cat(outs, dim=1)

    def adapted_logits(self, keys: torch.Tensor, v: torch.Tensor, K: int, strength: float) -> torch.Tensor:
        """No queries to adapt in this head: the plain logits [N, P*K, H, W], whatever ``strength``."""
        return self.logits_from_keys(keys, v)

    def forward(self, phi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.logits_from_keys(self.keys(phi), v)
