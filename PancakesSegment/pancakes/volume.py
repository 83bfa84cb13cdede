"""Volumes through the 2D model: slice, encode in batches, decode, restack.

Volumes are first re-oriented to LPS-aligned voxel order (an exact permutation
and flip, no interpolation) so that "axial", "coronal" and "sagittal" mean what
a radiologist expects whatever the file's direction; results are turned back
to the input's own orientation and carry its origin, spacing and direction.
Features are cached per slice as float16 on the CPU: ~1 MB per slice at 128^2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from .devices import batch_size_for
from .errors import PancakesInputError
from .preprocessing import Fit, finite_float, labels_from_logits, normalise, plan_fit, to_model_input
from .slice_source import NormalisedSlices, streamable

AXES = {"axial": 0, "coronal": 1, "sagittal": 2}  # array axis in (z, y, x) LPS order
# Model-size logits held at once while decoding: 4 slices at M=8, K=20, small enough
# to stay in cache (larger batches were slower per slice on CPU).
DECODE_BUDGET_BYTES = 48 * 2**20


@dataclass
class EncodedVolume:
    """Cached UNet features of every slice of one volume.

    features: float16 [D, C, S, S] on CPU, D = slices along ``axis``;
    fit: how each slice sits in the model input; oriented: the LPS-oriented
    reference (geometry only is used); original: the input image's geometry.
    """

    features: torch.Tensor
    fit: Fit
    axis: str
    oriented: sitk.Image
    original: sitk.Image


def check_volume(image, name: str = "volume") -> sitk.Image:
    """Reject what a slice-wise 2D model cannot take, with one clear line."""
    if not isinstance(image, sitk.Image):
        raise PancakesInputError(f"{name}: expected a SimpleITK image, got {type(image).__name__}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise PancakesInputError(f"{name}: vector-valued volume ({image.GetNumberOfComponentsPerPixel()} components per voxel); convert to a scalar volume first")
    if image.GetDimension() != 3:
        raise PancakesInputError(f"{name}: expected a 3D volume, got {image.GetDimension()}D")
    if 0 in image.GetSize():
        raise PancakesInputError(f"{name}: volume is empty (size {image.GetSize()})")
    return image


def slice_geometry(oriented: sitk.Image, axis: str) -> Tuple[int, Tuple[int, int], Tuple[float, float]]:
    """-> (array axis, in-plane shape (rows, cols), in-plane spacing (rows, cols))."""
    if axis not in AXES:
        raise PancakesInputError(f"axis {axis!r}: use one of {', '.join(AXES)}")
    a = AXES[axis]
    size_zyx = oriented.GetSize()[::-1]
    spacing_zyx = oriented.GetSpacing()[::-1]
    plane = [i for i in range(3) if i != a]
    return a, (size_zyx[plane[0]], size_zyx[plane[1]]), (spacing_zyx[plane[0]], spacing_zyx[plane[1]])


def _prepare(model, image: sitk.Image, axis: str, name: str) -> Tuple[sitk.Image, int, np.ndarray, Fit]:
    """Check, orient to LPS and normalise once -> (oriented, array axis, slices [D, rows, cols], fit).
    The slices are an array, or for integer volumes a NormalisedSlices that makes each batch on demand."""
    check_volume(image, name)
    oriented = sitk.DICOMOrient(image, "LPS")
    a, shape, spacing = slice_geometry(oriented, axis)
    if min(shape) < 4:
        raise PancakesInputError(f"{name}: slices of {shape[0]}x{shape[1]} voxels along {axis} are too small")
    # Normalising the whole volume at once keeps slices comparable with each other.
    if streamable(oriented):  # integer voxels: normalised batch by batch (slice_source.py)
        return oriented, a, NormalisedSlices(oriented, a, name), plan_fit(shape, model.input_size, spacing)
    view = sitk.GetArrayViewFromImage(oriented)  # ``oriented`` is returned with it, so it outlives the view
    values = finite_float(view, name)
    # Normalised in place when finite_float made a copy (any non-float32 input): one float32 volume, not two.
    arr = normalise(values, name, out=None if np.shares_memory(values, view) else values)
    return oriented, a, np.moveaxis(arr, a, 0), plan_fit(shape, model.input_size, spacing)


def encode_volume(model, image: sitk.Image, axis: str = "axial", batch_size: Optional[int] = None,
                  progress=None, cancel=None, name: str = "volume") -> EncodedVolume:
    """Normalise the whole volume once (so slices stay comparable), then encode slices in batches."""
    oriented, _, arr, fit = _prepare(model, image, axis, name)
    batch_size = batch_size_for(model.device, batch_size)
    batches = _encoded_batches(model, arr, fit, batch_size, progress, cancel, name)
    feats = [phi.to("cpu", torch.float16) for _, phi in batches]
    return EncodedVolume(torch.cat(feats), fit, axis, oriented, image)


def _encoded_batches(model, arr: np.ndarray, fit: Fit, step: int, progress, cancel, name: str):
    """Yield (first slice index, features [B, C, S, S]) batch by batch; honours cancel and reports progress."""
    from .engine import Cancelled

    depth = arr.shape[0]
    for start in range(0, depth, step):
        if cancel is not None and cancel():
            raise Cancelled(f"{name}: cancelled after {start} of {depth} slices")
        batch = torch.from_numpy(np.ascontiguousarray(arr[start : start + step]))
        with torch.no_grad():
            phi = model.module.encode(to_model_input(batch, fit).to(model.device))
        yield start, phi
        if progress is not None:
            progress(min(start + step, depth), depth)


def _decode_batch(model, phi: torch.Tensor, M: int, K: int, sel: List[int], fit: Fit) -> np.ndarray:
    """features [B, C, S, S] -> labels uint8 [P, B, rows, cols] at the slice's own size."""
    logits = model.decode_logits(phi, M, K, sel)  # [B, P, K, S, S]
    with torch.no_grad():
        labels = labels_from_logits(logits, fit)  # [B, P, rows, cols]
    return labels.permute(1, 0, 2, 3).cpu().numpy()


def _decode_step(n_prot: int, K: int, fit: Fit) -> int:
    """Slices per decode batch so that model-size logits stay under DECODE_BUDGET_BYTES."""
    return max(1, min(32, DECODE_BUDGET_BYTES // max(1, n_prot * K * fit.size * fit.size * 4)))


def _to_images(out: List[np.ndarray], a: int, oriented: sitk.Image, original: sitk.Image) -> List[sitk.Image]:
    """labels: P arrays [D, rows, cols] in oriented slice order -> P images in the input's geometry.

    Each array is taken out of ``out`` as it is converted, so that (when nothing else holds them)
    an array's memory is freed before the next image is made: the labels exist about once, not twice."""
    results = []
    orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(original.GetDirection())
    while out:
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(out.pop(0), 0, a)))
        img.CopyInformation(oriented)
        # Already in LPS order (most CTs): the same voxels, so no reoriented copy of each label volume.
        back = img if orientation == "LPS" else sitk.DICOMOrient(img, orientation)
        if back.GetSize() != original.GetSize():
            raise RuntimeError("re-orientation changed the volume size; this is a bug")
        back.CopyInformation(original)
        results.append(back)
    return results


def decode_volume(model, enc: EncodedVolume, M: int = 8, K: int = 20, which: Optional[Sequence[int]] = None,
                  progress=None, cancel=None) -> List[sitk.Image]:
    """Cached features -> one uint8 label volume per protocol (values 1..K), input geometry."""
    from .engine import Cancelled, check_mk, check_which

    M, K = check_mk(M, K)
    sel = check_which(which, M)
    n_prot = len(sel) if sel else M
    depth = enc.features.shape[0]
    out = np.zeros((n_prot, depth) + tuple(enc.fit.shape), dtype=np.uint8)
    step = _decode_step(n_prot, K, enc.fit)
    for start in range(0, depth, step):
        if cancel is not None and cancel():
            raise Cancelled(f"decoding cancelled after {start} of {depth} slices")
        out[:, start : start + step] = _decode_batch(model, enc.features[start : start + step], M, K, sel, enc.fit)
        if progress is not None:
            progress(min(start + step, depth), depth)
    return _to_images(list(out), AXES[enc.axis], enc.oriented, enc.original)


def segment_volume(model, image: sitk.Image, M: int = 8, K: int = 20, axis: str = "axial",
                   batch_size: Optional[int] = None,
                   progress=None, cancel=None, name: str = "volume") -> List[sitk.Image]:
    """Encode and decode batch by batch without caching features: memory beyond the
    input and the label volumes stays bounded by the batch, whatever the depth."""
    from .engine import check_mk

    M, K = check_mk(M, K)
    oriented, a, arr, fit = _prepare(model, image, axis, name)
    depth = arr.shape[0]
    out = [np.zeros((depth,) + tuple(fit.shape), dtype=np.uint8) for _ in range(M)]  # one per protocol: freed one by one
    step = min(batch_size_for(model.device, batch_size), _decode_step(M, K, fit))
    for start, phi in _encoded_batches(model, arr, fit, step, progress, cancel, name):
        # Through float16 like cached features, so streamed and cached decodes give the same labels
        # (the decode-time adaptation would otherwise flip a few near-tied pixels).
        labels = _decode_batch(model, phi.to(torch.float16), M, K, [], fit)
        for m in range(M):
            out[m][start : start + step] = labels[m]
    del arr  # the normalised volume (4 bytes a voxel) is not needed while the images are made
    return _to_images(out, a, oriented, image)
