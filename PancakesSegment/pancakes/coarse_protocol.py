"""The coarse protocol: the last protocol's labels merged into two groups by the model's own queries.

Why (issue 20): every protocol the network proposes splits a whole object into parts, so on
figure/ground tasks (the brain against the rest, nuclei against background) no single label
covers the object, and a two-class Otsu threshold beat the model by 0.1-0.2 Set Dice. The
network does separate figure from ground: in every protocol of the shipped model, the query
of label 1 points away from all the others (mean cosine -0.2 to -0.5), and label 1 takes the
background. Grouping the labels of one protocol by their queries turns it into a two-label
protocol, figure against ground. Giving the last of 8 protocols over to this merge raised
figure/ground Set Dice on the dev split's test half from 0.61/0.58/0.58/0.58 to
0.71/0.69/0.70/0.69 (S = 1/2/3/5; two-class Otsu 0.69-0.71) and coarse partitions by 0.02,
for at most 0.005 on fine parcels and small structures (MODEL_CARD.md, "The coarse protocol").

The groups come from the queries alone, not from the images, so the merge is the same for
every image, volume and subject: label k of the coarse protocol means the same structure in
every image, as for any other protocol. Its probabilities are those of the source labels
summed per group (a log-sum-exp of their logits), so soft outputs stay probabilities. Given the
model inputs, apply_coarse then moves the figure/ground boundary to where each image's
intensities change (pancakes.coarse_intensity).

Example::

    groups = query_groups(module, M=8, K=20, m=7)      # int64 [20], 0 = the group of label 1
    logits = merge_logits(logits, groups)              # [B, P, K, S, S], slots 2..K-1 never win
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F

from .coarse_intensity import Inner, refine_figure_ground

# Groups of the coarse protocol: two, figure and ground. Three did worse on the select half at
# every S (figure/ground 0.63/0.58/0.59 with three query groups of the last protocol, 0.71/0.66/0.67 with two).
COARSE_GROUPS = 2
# Logit of the label slots a merged protocol leaves empty: far below any group's, finite so
# that a softmax over the K slots stays free of NaN.
EMPTY_SLOT_LOGIT = -1.0e4


def has_queries(module) -> bool:
    """True when ``module`` (a PancakesNet, eager or TorchScript) exposes what query_groups needs."""
    head = getattr(module, "head", None)
    return head is not None and hasattr(head, "query") and hasattr(module, "_embeddings")


def query_groups(module, M: int, K: int, m: int, groups: int = COARSE_GROUPS) -> torch.Tensor:
    """Group the K label queries of protocol ``m`` -> int64 [K], values 0..groups-1.

    Average-linkage clustering on cosine distance between the unit queries w(v_{m,k}).
    Groups are numbered by their first label, so label 1 is always in group 0 (shown as
    label 1 of the coarse protocol). With K <= groups every label keeps its own group.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    if K <= groups:
        return torch.arange(K, dtype=torch.long)
    with torch.no_grad():
        v = module._embeddings(M, K, [m], torch.device("cpu"))  # [1, K, E]
        head = module.head
        params = list(head.parameters())
        dev = params[0].device if params else torch.device("cpu")
        q = F.normalize(head.query(v.reshape(K, -1).to(dev)), dim=1).double().cpu().numpy()  # [K, hidden]
    found = fcluster(linkage(q, "average", metric="cosine"), groups, "maxclust")  # 1..groups
    # Renumber by first appearance so that the numbering does not depend on scipy's.
    order = {c: i for i, c in enumerate(dict.fromkeys(found.tolist()))}
    return torch.tensor([order[c] for c in found.tolist()], dtype=torch.long)


def merge_logits(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Protocol logits [..., K, S, S] -> the same shape, label slot g holding group g.

    Slot g gets log(sum of exp(logit) over the labels of group g), so that its softmax
    probability is the sum of its members'; slots past the last group get EMPTY_SLOT_LOGIT.
    """
    K = logits.shape[-3]
    if groups.shape[0] != K:
        raise ValueError(f"groups has {groups.shape[0]} entries for {K} labels")
    out = torch.full_like(logits, EMPTY_SLOT_LOGIT)
    g = groups.to(logits.device)
    for group in range(int(g.max()) + 1):
        members = torch.nonzero(g == group).flatten()
        out[..., group, :, :] = torch.logsumexp(logits.index_select(-3, members), dim=-3)
    return out


def coarse_position(M: int, sel: List[int], coarse: int) -> Optional[int]:
    """Where the coarse protocol (the last one, M - 1) sits among the decoded protocols.

    sel: protocols asked for (empty = all M). Returns its index in the decoded stack, or
    None when it is not asked for, when ``coarse`` is 0, or when M is 1 (a lone protocol
    stays fine: the coarse one only replaces the last of several).
    """
    if coarse <= 0 or M < 2:
        return None
    if not sel:
        return M - 1
    return sel.index(M - 1) if (M - 1) in sel else None


def apply_coarse(module, logits: torch.Tensor, M: int, K: int, sel: List[int], cache: dict,
                 images: Optional[torch.Tensor] = None, inner: Optional[Inner] = None) -> torch.Tensor:
    """Merge the coarse protocol's slot of decoded logits [B, P, K, S, S] in place; returns them.

    ``images`` [B, 1, S, S] (the model inputs) sharpen the merged figure/ground with each image's
    intensities (pancakes.coarse_intensity); ``inner`` (top, left, height, width) is where the image
    sits in them. Without images the merge alone is applied (training through the merge does this).
    ``cache`` keeps the groups per (M, K) between calls (the queries do not change).
    Does nothing when the last protocol is not among ``sel``.
    """
    pos = coarse_position(M, sel, 1)
    if pos is None:
        return logits
    if (M, K) not in cache:
        cache[(M, K)] = query_groups(module, M, K, M - 1)
    logits[:, pos] = merge_logits(logits[:, pos], cache[(M, K)])
    if images is not None and K >= 2:
        logits[:, pos] = refine_figure_ground(logits[:, pos], images.to(logits.device), inner)
    return logits
