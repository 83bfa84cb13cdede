"""Distillation from the starting weights ("learning without forgetting"), against the v2 trade-off.

Why (issue 20): every CPU continuation of the shipped model (runs v2 to v2j) gained figure/ground
and coarse partitions and lost small structures in sets of 3-5 images, which the starting weights
did well. Averaging weights afterwards (pancakes.training.average_weights) only landed between
the two. Here the pull towards the start acts in function space, at every step: the student's
label probabilities are kept close to those of the frozen starting network (Li and Hoiem,
"Learning without Forgetting", TPAMI 2018), while the Pancakes loss moves them where the
relabelled targets ask. Label k of protocol m is the same (m, k) query in both networks, so the
per-pixel distributions over K can be compared directly.

Example::

    teacher = load_teacher(Path("model_weights/pancakes.pt"))
    kl = distill_kl(student_logits, teacher_logits(teacher, images, M, K))   # scalar, >= 0
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import net_from_model_file


def load_teacher(model_file: Path, device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """The frozen network of ``model_file`` (a PancakesNet in eval mode, no gradients)."""
    net, _ = net_from_model_file(model_file)
    net = net.to(device).eval()
    net.requires_grad_(False)
    return net


def teacher_logits(teacher: torch.nn.Module, images: torch.Tensor, M: int, K: int, adapt: float = 0.0) -> torch.Tensor:
    """images [S, 1, H, W] -> the teacher's logits [S, M, K, H, W], decoded as the student is trained."""
    with torch.no_grad():
        phi = teacher.encode(images)
        if adapt > 0:
            return teacher.decode_logits_adapted(phi, M, K, [], adapt)
        return teacher.decode_logits(phi, M, K, [])


def distill_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over images, protocols and pixels of KL(teacher || student) over the K labels.

    student, teacher: logits [S, M, K, H, W] of the same (M, K). Returns a scalar >= 0 that is 0
    exactly when the two give the same label probabilities everywhere.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} differ")
    log_s = F.log_softmax(student.float(), dim=2)
    log_t = F.log_softmax(teacher.float(), dim=2)
    return (log_t.exp() * (log_t - log_s)).sum(dim=2).mean()
