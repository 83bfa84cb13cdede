"""One training set: S images of one domain with their label maps (paper §3.1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .distinct import content_key


@dataclass
class TaskSet:
    """A set of S images sharing a domain and a labelling protocol.

    Real and synthetic sources both return this, so the training loop and the
    augmentation never need to know where a set came from.

    Attributes:
        images: float32 [S, H, W], intensities in [0, 1].
        labelmaps: int32 [S, H, W]; 0 is background, 1..L are labels, and label
            l means the same structure in every image of the set.
        label: a label > 0 present in every image of the set (a training target).
        dataset: name of the source ("synthetic" for generated sets).
        protocol: the protocol within that source (for synthetic sets: the kind of
            shape the template was built from).
        slices: where each image comes from, e.g. "volume:axis position" (real data).
    """

    images: np.ndarray
    labelmaps: np.ndarray
    label: int
    dataset: str
    protocol: str
    slices: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape != self.labelmaps.shape:
            raise ValueError(
                f"images {self.images.shape} and labelmaps {self.labelmaps.shape} must both be [S, H, W]"
            )

    @property
    def size(self) -> int:
        """S, the number of images in the set."""
        return int(self.images.shape[0])

    def key(self) -> str:
        """What the set asks, as a short hash of its images and its target mask (label == ``label``).

        Two draws with the same key are the same question: a development source with few slices of a
        structure (one lung lesion spans 5 slices of the test half) yields the same set again and again,
        and a report must count such repeats once when it says how much evidence a figure rests on.
        """
        return content_key(self.images, self.labelmaps == self.label)

    def common_labels(self) -> list[int]:
        """Labels > 0 present in every image of the set, ascending."""
        common: set[int] | None = None
        for lab in self.labelmaps:
            present = set(int(v) for v in np.unique(lab) if v > 0)
            common = present if common is None else common & present
        return sorted(common or ())
