"""Uniform in-memory form of the real labelled data, and the image operations on it.

Every source (MNI templates with atlases, TotalSegmentator CT/MR, pyradiomics lesions,
fluorescence nuclei) becomes a :class:`RealDataset` of :class:`RealVolume` objects:
one SimpleITK image plus label maps of named protocols on the same grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk


@dataclass
class RealVolume:
    """One image and its label maps, all on the image's grid.

    image: 3D (or 2D for microscopy tiles) scalar SimpleITK image, any pixel type.
    labels: protocol name -> integer label map, 0 = background. Passing the *same*
        label image object to several volumes of a shared-grid dataset stores its
        slices once (the MNI atlases).
    """

    name: str
    image: sitk.Image
    labels: Dict[str, sitk.Image]

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError(f"volume {self.name!r} has no label maps")
        for protocol, lab in self.labels.items():
            if lab.GetSize() != self.image.GetSize():
                raise ValueError(
                    f"volume {self.name!r}: label map {protocol!r} has size {lab.GetSize()}, "
                    f"image has {self.image.GetSize()}"
                )


@dataclass
class RealDataset:
    """Volumes of one domain. shared_grid: all volumes share one grid, so a set may
    take the same slice position from different volumes (the MNI templates)."""

    name: str
    volumes: List[RealVolume]
    shared_grid: bool = False
    notes: str = ""
    protocols: List[str] = field(init=False)

    def __post_init__(self) -> None:
        if not self.volumes:
            raise ValueError(f"dataset {self.name!r} has no volumes")
        seen: List[str] = []
        for vol in self.volumes:
            seen += [p for p in vol.labels if p not in seen]
        self.protocols = seen
        if self.shared_grid:
            ref = self.volumes[0].image
            for vol in self.volumes[1:]:
                if not same_grid(ref, vol.image):
                    raise ValueError(
                        f"dataset {self.name!r} claims a shared grid but volume "
                        f"{vol.name!r} lies on another grid"
                    )


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-3) -> bool:
    """True when two images have the same size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def normalise(image: sitk.Image, low: float = 0.5, high: float = 99.5) -> sitk.Image:
    """Float32 copy of ``image`` mapped to [0, 1] by its robust ``low``/``high`` percentiles.

    Done per volume, not per slice, so that slices of one set keep a common scale.
    """
    arr = sitk.GetArrayViewFromImage(image).astype(np.float32)
    lo, hi = np.percentile(arr, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    out = sitk.GetImageFromArray(np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32))
    out.CopyInformation(image)
    return out


def resample_onto(image: sitk.Image, reference: sitk.Image, labels: bool) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid through physical space (identity
    transform): nearest neighbour for label maps, linear for intensities; outside -> 0."""
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    pixel = image.GetPixelID() if labels else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interp, 0.0, pixel)


def as_label_image(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Wrap an integer array [z, y, x] as a label image with ``reference``'s geometry."""
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.int32))
    out.CopyInformation(reference)
    return out


def image_from_array(arr: np.ndarray, spacing: Sequence[float]) -> sitk.Image:
    """Image from a numpy array ([z, y, x] or [y, x]); spacing in SimpleITK (x, y[, z]) order."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing([float(s) for s in spacing])
    return img


def argmax_probabilistic(image4d: sitk.Image, min_prob: float) -> sitk.Image:
    """3D label map from a 4D probabilistic atlas (x, y, z, structure).

    Label = 1 + index of the most probable structure where its probability exceeds
    ``min_prob`` (in the atlas' own units, e.g. percent), else 0.
    """
    if image4d.GetDimension() != 4:
        raise ValueError(f"probabilistic atlas must be 4D, got {image4d.GetDimension()}D")
    prob = sitk.GetArrayViewFromImage(image4d)  # [structure, z, y, x]
    best = prob.argmax(axis=0)
    keep = np.take_along_axis(prob, best[None], axis=0)[0] > min_prob
    lab = np.where(keep, best + 1, 0).astype(np.int32)
    out = sitk.GetImageFromArray(lab)
    out.SetSpacing(image4d.GetSpacing()[:3])
    out.SetOrigin(image4d.GetOrigin()[:3])
    direction = np.array(image4d.GetDirection()).reshape(4, 4)[:3, :3]
    out.SetDirection(direction.ravel().tolist())
    return out


def combine_masks(masks: Sequence[sitk.Image], reference: sitk.Image) -> sitk.Image:
    """One label map from binary masks: mask i becomes label i + 1, later masks win
    where they overlap (list small structures after the large ones that contain them).
    Masks on other grids are resampled onto ``reference`` first."""
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.int32)
    for i, mask in enumerate(masks):
        if not same_grid(mask, reference):
            mask = resample_onto(mask, reference, labels=True)
        out[sitk.GetArrayViewFromImage(mask) > 0] = i + 1
    return as_label_image(out, reference)


def slice_axes(image: sitk.Image, max_anisotropy: float = 3.0,
               min_aspect: float = 0.25) -> Tuple[int, ...]:
    """SimpleITK axes (0=x, 1=y, 2=z) worth cutting slices along.

    An axis is skipped when its slice plane mixes very different spacings (thick
    slices seen side-on are mostly interpolation) or when the plane is a thin strip
    (a 20-slice stack seen side-on), which would be nearly all padding.
    """
    if image.GetDimension() == 2:
        return (2,)
    spacing = np.array(image.GetSpacing(), dtype=float)
    extent = spacing * np.array(image.GetSize(), dtype=float)
    axes = []
    for axis in range(3):
        plane = [i for i in range(3) if i != axis]
        sp, ex = spacing[plane], extent[plane]
        if sp.max() / sp.min() <= max_anisotropy and ex.min() / ex.max() >= min_aspect:
            axes.append(axis)
    return tuple(axes)


def unique_values(label_images: Sequence[sitk.Image]) -> np.ndarray:
    """Sorted non-zero values over several label maps (int64)."""
    values: List[np.ndarray] = [np.unique(sitk.GetArrayViewFromImage(lab)) for lab in label_images]
    allv = np.unique(np.concatenate(values)) if values else np.zeros(0, np.int64)
    if allv.size and allv.min() < 0:
        raise ValueError(f"label maps must not hold negative values, found {allv.min()}")
    return allv[allv != 0].astype(np.int64)


def relabel_lut(values: np.ndarray) -> np.ndarray:
    """Lookup table mapping original label values to 1..K (0 stays 0), int16."""
    if values.size and values.max() > 10_000_000:
        raise ValueError(f"label value {values.max()} is too large for a lookup table")
    if values.size > np.iinfo(np.int16).max:
        raise ValueError(f"{values.size} labels do not fit int16")
    lut = np.zeros(int(values.max()) + 1 if values.size else 1, dtype=np.int16)
    lut[values] = np.arange(1, values.size + 1, dtype=np.int16)
    return lut
