"""The whole Pancakes network: f (UNet) then h (protocol head), split into encode/decode."""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from .embedding import embedding_dim, protocol_embedding
from .heads import DotProductHead, FaithfulHead
from .unet import UNet


class PancakesNet(nn.Module):
    """images [N, 1, H, W] in [0, 1] -> probabilities [N, M, K, H, W] (softmax over K).

    ``encode`` runs the UNet once per image; its result ("features",
    [N, C + 1, H, W]: phi with C = 32 channels, and the image) is what callers cache. ``decode`` turns
    cached features into any (M, K), or a subset of protocols, without the UNet.
    H and W must be multiples of 8 (the engine pads).
    """

    def __init__(self, features: int = 32, levels: int = 4, emb_half: int = 16,
                 head: str = "dot", hidden: int = 64) -> None:
        super().__init__()
        self.emb_half = emb_half
        self.head_kind = head
        self.unet = UNet(1, features, levels)
        e = embedding_dim(emb_half)
        if head == "dot":
            self.head = DotProductHead(features + 1, e, hidden)
        elif head == "faithful":
            self.head = FaithfulHead(features + 1, e, 32)
        else:
            raise ValueError(f"unknown head {head!r}; use 'dot' or 'faithful'")

    @torch.jit.export
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, H, W] in [0, 1] -> cached features [N, C + 1, H, W].

        The features carry the image itself beside phi: the head can then split
        by intensity from the first step (what multi-Otsu does) while the UNet
        learns context; without it, early training saw nearly identical keys at
        every pixel and one label won everywhere.
        """
        return torch.cat([self.unet(images), images], dim=1)

    @torch.jit.export
    def decode_logits(self, features: torch.Tensor, M: int, K: int, protocols: List[int]) -> torch.Tensor:
        """features [N, C, H, W] -> logits [N, len(protocols), K, H, W].

        An empty ``protocols`` list means all M protocols.
        """
        return self.decode_logits_adapted(features, M, K, protocols, 0.0)

    @torch.jit.export
    def decode_logits_adapted(self, features: torch.Tensor, M: int, K: int, protocols: List[int],
                              strength: float) -> torch.Tensor:
        """Like ``decode_logits`` with per-image prototype adaptation (heads.DotProductHead.adapted_logits):
        features [N, C, H, W] -> logits [N, len(protocols) or M, K, H, W]. ``strength`` 0 gives
        ``decode_logits``'s result. The engine decodes with it by default; training uses it only
        when the config's ``adapt`` is above 0.
        """
        v = self._embeddings(M, K, protocols, features.device)
        p = v.shape[0]
        logits = self.head.adapted_logits(self.head.keys(features), v.reshape(p * K, v.shape[-1]), K, strength)
        n, _, h, w = logits.shape
        return logits.reshape(n, p, K, h, w)

    def _embeddings(self, M: int, K: int, protocols: List[int], device: torch.device) -> torch.Tensor:
        """v_{m,k} for the protocols asked for (all M when empty): [P, K, E]."""
        v = protocol_embedding(M, K, self.emb_half, device)
        if len(protocols) > 0:
            for m in protocols:
                if m < 0 or m >= M:
                    raise ValueError("protocol index out of range")
            v = v[torch.tensor(protocols, dtype=torch.long, device=device)]
        return v

    @torch.jit.export
    def decode(self, features: torch.Tensor, M: int, K: int, protocols: List[int]) -> torch.Tensor:
        """features [N, C, H, W] -> probabilities [N, len(protocols) or M, K, H, W]."""
        return torch.softmax(self.decode_logits(features, M, K, protocols), dim=2)

    def forward(self, images: torch.Tensor, M: int, K: int) -> torch.Tensor:
        """images [N, 1, H, W] in [0, 1] -> probabilities [N, M, K, H, W]."""
        empty: List[int] = []
        return self.decode(self.encode(images), M, K, empty)
