"""Normalised slices of an integer volume, made batch by batch instead of all at once.

A 512x512x400 int16 CT is 210 MB; its normalised float32 copy was another 420 MB, held
for the whole run, and it made memory grow by 14 bytes a voxel with M = 8 protocols
where the input and the labels take 10. For integer volumes (CT, most MR) the
normalisation is exact in float32 and needs only the volume's range, so each batch is
normalised when the encoder asks for it, with the same values as the whole-volume path.

Usage::

    slices = NormalisedSlices(oriented, axis=0, name="ct.nii.gz")   # integer voxels only
    batch = slices[8:12]     # float32 [4, rows, cols] in [0, 1]
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import SimpleITK as sitk

from .preprocessing import apply_range, normalise_range


def streamable(image: sitk.Image) -> bool:
    """True when ``image``'s voxels are integers: no NaN or inf to replace, exact in float32."""
    return sitk.GetArrayViewFromImage(image).dtype.kind in "iub"


class NormalisedSlices:
    """Slices along array axis ``axis`` of an integer ``oriented`` volume, mapped to [0, 1] on demand."""

    def __init__(self, oriented: sitk.Image, axis: int, name: str) -> None:
        self._image = oriented  # the view below points into its buffer: keep it alive as long as we are
        view = sitk.GetArrayViewFromImage(oriented)
        self.lo, self.hi = normalise_range(view, name)
        self._slices = np.moveaxis(view, axis, 0)
        self.shape: Tuple[int, ...] = self._slices.shape

    def __getitem__(self, index: slice) -> np.ndarray:
        return apply_range(self._slices[index], self.lo, self.hi)
