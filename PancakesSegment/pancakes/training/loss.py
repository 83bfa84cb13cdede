"""The Pancakes loss (paper eqs. 5-6) with several targets per set.

d[t, m, k] = E_s[ soft Dice(prob[s, m, k], y_t[s]) ]  for disjoint targets t.

loss = alpha * mean_t min_{m,k} (1 - d[t, m, k])                   (eq. 6, one min per target)
     + (1 - alpha) * min_m min_{pi} mean_t (1 - d[t, m, pi(t)])    (one protocol holds all targets)
     + beta * CE(logits[:, m*], pi*)  on the pixels the targets cover
     + relax * mean_{r in R} [ matched error and CE of protocol r ]   (R: a few random protocols)
     + gamma * mean_{m in winners and R} (c - H(mean label distribution of m) / log K)^+
       with c = 1, or c = log min(T, K) / log K when the entropy is capped at the targets

The first term is the paper's loss applied to every known label (appendix D
applies it to several labels of a multi-label map). The second asks one
protocol to hold every target, each on its *own* label (pi is a one-to-one
assignment of targets to labels, found with the Hungarian method): without the
one-to-one constraint every target can pick the same label, and training
collapses to one label over the whole image (seen in our smoke runs and in the
trials recorded in DESIGN.md). The cross-entropy on that assignment gives dead
labels a gradient that does not vanish with their probability (soft Dice
through a softmax scales by p(1-p)). With beta = 0 and alpha = 1 this is the
paper's loss.

The last term is a relaxed winner-takes-all: with a pure min, protocols that
never win get no gradient while the shared network moves under them, and they
drift to one label over the whole image (our first full runs showed ~1.9
labels per protocol, 97% of the image on one). A small weight on a few random
protocols per step keeps every protocol a real segmentation; the winners still
get the bulk of the gradient, so protocols stay diverse.

The entropy term is the standard remedy for one label taking over (as in
IIC/SCAN-style clustering): it rewards protocols whose labels share the image
rather than one label covering it. Its weight is small, so targets with few
labels are not forced to use all K.

Because every term is a min, the gradient reaches only the winning protocols.
We find the winners without autograd, then recompute only those protocols with
autograd: same value and gradient, about M times less backward work.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

EPS = 1e-6


def soft_dice_matrix(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Set-averaged soft Dice of every map against every target.

    probs: [S, P, K, H, W] probabilities; targets: [T, S, H, W] in {0, 1}.
    Returns d: [T, P, K], the mean over the S images of the soft Dice.
    """
    s, p, k, h, w = probs.shape
    flat = probs.reshape(s, p * k, h * w)
    y = targets.reshape(targets.shape[0], s, h * w).to(probs.dtype)
    inter = torch.einsum("sqx,tsx->tsq", flat, y)  # [T, S, P*K]
    sum_p = flat.sum(-1)  # [S, P*K]
    sum_y = y.sum(-1)  # [T, S]
    dice = (2 * inter + EPS) / (sum_p[None] + sum_y[..., None] + EPS)
    return dice.mean(1).reshape(targets.shape[0], p, k)


def best_assignment(d: np.ndarray) -> Tuple[int, List[int], float]:
    """d: [T, P, K] -> (protocol m*, label per target, mean error) of the best one-to-one fit.

    When there are more targets than labels, the extra targets take their best
    label without the one-to-one constraint.
    """
    t, p, k = d.shape
    best = (0, [0] * t, np.inf)
    for m in range(p):
        rows, cols = linear_sum_assignment(-d[:, m, :])
        labels = [-1] * t
        for r, c in zip(rows, cols):
            labels[r] = int(c)
        for r in range(t):
            if labels[r] < 0:
                labels[r] = int(d[r, m].argmax())
        err = float(np.mean([1 - d[r, m, labels[r]] for r in range(t)]))
        if err < best[2]:
            best = (m, labels, err)
    return best


def plan(d: torch.Tensor, alpha: float, protocols: Optional[Sequence[int]] = None) -> dict:
    """Choose, without autograd, which entries of d each term uses.

    ``protocols``: the only protocols allowed to win (None: all). Masked ones get a Dice
    of -1, below any real one, so neither the per-target min nor the matched protocol
    can pick them.
    """
    if protocols is not None:
        keep = torch.zeros(d.shape[1], dtype=torch.bool, device=d.device)
        keep[list(protocols)] = True
        d = torch.where(keep[None, :, None], d, torch.full_like(d, -1.0))
    t, p, k = d.shape
    flat_idx = d.reshape(t, p * k).argmax(1).tolist()
    per_target = [(i // k, i % k) for i in flat_idx]
    m_star, labels, _ = best_assignment(d.cpu().numpy())
    winners = {m_star} | ({m for m, _ in per_target} if alpha > 0 else set())
    return {"per_target": per_target, "m_star": m_star, "labels": labels, "winners": sorted(winners)}


def assignment_ce(sub: torch.Tensor, mi: int, labels: List[int], targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of protocol ``mi`` of ``sub`` (logits [S, P', K, H, W]) against the class
    map "target i -> labels[i]"; pixels no target covers are ignored."""
    cls = torch.full(targets.shape[1:], -100, dtype=torch.long, device=sub.device)
    for i, lab in enumerate(labels):
        cls[targets[i] > 0.5] = lab
    if not bool((cls >= 0).any()):
        return sub.new_zeros(())
    return F.cross_entropy(sub[:, mi], cls, ignore_index=-100)


def matched_error(d: torch.Tensor, mi: int, labels: List[int]) -> torch.Tensor:
    """Mean Dice error of protocol ``mi`` when target i takes label labels[i]; d: [T, P', K]."""
    return torch.stack([1 - d[i, mi, lab] for i, lab in enumerate(labels)]).mean()


def entropy_ceiling(n_targets: int, k: int) -> float:
    """Normalised entropy of min(T, K) equally used labels: log(min(T, K)) / log(K).

    Why: a full entropy reward (ceiling 1) asks every matched protocol to use all K
    labels, even when the set has two targets (one object against the rest), which
    pulls coarse protocols back into parcels (issue 20). Capped at the targets' own
    entropy it still punishes one label over the whole image (entropy 0), the collapse
    the term exists for, but no longer rewards splitting beyond what the set shows.
    """
    return math.log(max(2, min(int(n_targets), int(k)))) / math.log(max(2, int(k)))


def pancakes_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.5,
                  beta: float = 0.5, relax: float = 0.0, n_relax: int = 2,
                  generator: torch.Generator = None, gamma: float = 0.0,
                  entropy_to_targets: bool = False,
                  protocols: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, dict]:
    """Loss from logits [S, M, K, H, W] (graph attached) and disjoint targets [T, S, H, W].

    ``protocols`` limits which protocols may win this set (see ``plan``; the loop's
    granularity zones use it); relaxed protocols are still drawn from all of them.

    ``entropy_to_targets`` caps the label-usage reward at the entropy of T equal labels
    (see ``entropy_ceiling``), so that a set of two targets no longer asks for K labels.

    Returns (loss, info): info has 'winners' (protocols that got gradient),
    'dice' (best set Dice per target, detached) and 'm_star'.
    """
    with torch.no_grad():
        d_all = soft_dice_matrix(torch.softmax(logits.detach().float(), dim=2), targets)
    choice = plan(d_all, alpha, protocols)
    n_prot = logits.shape[1]
    relaxed: List[int] = []
    if relax > 0 and n_relax > 0:
        order = torch.randperm(n_prot, generator=generator).tolist()
        relaxed = [m for m in order if m != choice["m_star"] and (protocols is None or m in protocols)][:n_relax]
    sel = sorted(set(choice["winners"]) | set(relaxed))
    pos = {m: i for i, m in enumerate(sel)}
    sub = logits.index_select(1, torch.tensor(sel, dtype=torch.long, device=logits.device)).float()
    d = soft_dice_matrix(torch.softmax(sub, dim=2), targets)  # [T, len(sel), K], differentiable
    t = targets.shape[0]
    loss = logits.new_zeros(())
    if alpha > 0:
        loss = loss + alpha * torch.stack([1 - d[i, pos[m], k] for i, (m, k) in enumerate(choice["per_target"])]).mean()
    ms = pos[choice["m_star"]]
    if alpha < 1:
        loss = loss + (1 - alpha) * matched_error(d, ms, choice["labels"])
    if beta > 0:
        loss = loss + beta * assignment_ce(sub, ms, choice["labels"], targets)
    d_np = d_all.cpu().numpy()
    for r in relaxed:
        _, labels_r, _ = best_assignment(d_np[:, r : r + 1])
        term = matched_error(d, pos[r], labels_r) + beta * assignment_ce(sub, pos[r], labels_r, targets)
        loss = loss + relax / len(relaxed) * term
    if gamma > 0 and sub.shape[2] > 1:
        marginal = torch.softmax(sub, dim=2).mean(dim=(0, 3, 4))  # [P', K]
        entropy = -(marginal * torch.log(marginal + 1e-8)).sum(1) / math.log(sub.shape[2])
        ceiling = entropy_ceiling(t, sub.shape[2]) if entropy_to_targets else 1.0
        loss = loss + gamma * torch.relu(ceiling - entropy).mean()
    info = {"winners": sorted(choice["winners"]), "relaxed": relaxed, "m_star": choice["m_star"],
            "dice": d_all.reshape(t, -1).max(1).values}
    return loss, info
