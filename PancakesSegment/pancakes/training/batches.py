"""Turn sampled sets into training tensors: augment, resize, pick targets."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .taskset import TaskSet


def pick_targets(task: TaskSet, rng: np.random.Generator, max_targets: int) -> list:
    """Labels used as targets: the sampled one, the background, and others present in every image.

    Several targets per set make "one label covers everything" a losing answer
    (DESIGN.md: single-target trials collapsed that way).
    """
    common = [lab for lab in task.common_labels() if lab != task.label]
    rng.shuffle(common)
    chosen = [task.label] if task.label > 0 else []
    # The background of a label map is a structure too (outside the body, the
    # medium around cells): as a target it makes the matched protocol a complete
    # partition and gives the cross-entropy every pixel of the chosen labels.
    if bool((task.labelmaps == 0).reshape(task.labelmaps.shape[0], -1).any(1).all()):
        chosen.append(0)
    return chosen + common[: max(0, max_targets - len(chosen))]


def set_to_tensors(task: TaskSet, rng: np.random.Generator, size: int, max_targets: int,
                   augment, generator: torch.Generator) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """TaskSet -> (images [S, 1, size, size], targets [T, S, size, size]) or None if no target survives."""
    images = torch.from_numpy(np.ascontiguousarray(task.images, dtype=np.float32))[:, None]
    labels = torch.from_numpy(np.ascontiguousarray(task.labelmaps)).long()
    if augment is not None:
        images, labels = augment(images, labels, generator)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="area")
        labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    wanted = pick_targets(task, rng, max_targets)
    targets = [labels == lab for lab in wanted]
    # Augmentation can push a label out of an image; keep targets present everywhere.
    targets = [t for t in targets if bool(t.flatten(1).any(1).all())]
    if not targets:
        return None
    return images.clamp(0, 1), torch.stack(targets).float()
