"""Volumes through the 2D model, step by step: cut into slices, encode in batches, decode, restack.

pancakes.predictor.Predictor strings these steps together (it is the one entry point);
this module holds the steps, so that each stays small and testable.

Volumes are first re-oriented to LPS-aligned voxel order (an exact permutation
and flip, no interpolation) so that "axial", "coronal" and "sagittal" mean what
a radiologist expects whatever the file's direction; results are turned back
to the input's own orientation and carry its origin, spacing and direction.
A 2D image (a one-slice volume, pancakes.inputs.as_scalar_volume) is cut in its
own plane instead, whatever the axis, and is not re-oriented.
Features are cached per slice as float16 on the CPU: ~1 MB per slice at 128^2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from .contract import Cancel, Cancelled, Progress, check_axis
from .errors import PancakesInputError
from .label_stack import empty_label_images, paste_slices
from .preprocessing import (Fit, check_spacings, finite_float, from_model_output, inner_box, labels_from_logits,
                            normalise, plan_fit,
                            to_grey, to_model_input)
from .slice_source import NormalisedSlices, streamable
from .superpixel_pooling import RegionCache

# Model-size logits held at once while decoding: 2 slices at M=8, K=20. Smaller batches stay in
# cache: 4 slices were 6-9 % slower per slice on CPU than 2 (and 1 slower again), and the decode's
# temporaries (several logit-sized tensors in the adaptation) are the largest part of peak memory
# above the input and the labels (benchmarks/README.md, issue 15).
DECODE_BUDGET_BYTES = 24 * 2**20
# A GPU has no such cache to stay in, and wants large batches (devices.default_batch_size).
DECODE_BUDGET_BYTES_GPU = 1 << 30


@dataclass
class Slicing:
    """How a volume was cut into model slices, and how to put labels back.

    fit: where each slice sits in the model input; array_axis: the axis of
    ``reference``'s (k, j, i) array the slices run along; reference: the LPS-oriented
    volume (geometry only), or the input itself for a 2D image; original: the input;
    reorient: whether labels must be turned back from ``reference`` to ``original``.
    """

    fit: Fit
    array_axis: int
    reference: sitk.Image
    original: sitk.Image
    reorient: bool


@dataclass
class EncodedVolume:
    """Cached UNet features of every slice of one volume: float16 [D, C, S, S] on the CPU, with the
    model inputs float16 [D, 1, S, S] that the coarse protocol's intensity step reads (1/C more),
    and each slice's superpixels once a pooled decode has segmented them (int16: at most 1/C more)."""

    features: torch.Tensor
    slicing: Slicing
    axis: str  # the slicing direction asked for ("axial", ...); a 2D image ignores it
    inputs: Optional[torch.Tensor] = None
    regions: RegionCache = field(default_factory=RegionCache)


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
    a = check_axis(axis)
    size_zyx = oriented.GetSize()[::-1]
    spacing_zyx = oriented.GetSpacing()[::-1]
    plane = [i for i in range(3) if i != a]
    return a, (size_zyx[plane[0]], size_zyx[plane[1]]), (spacing_zyx[plane[0]], spacing_zyx[plane[1]])


def orientation_of(image: sitk.Image) -> str:
    """The three-letter DICOM orientation closest to ``image``'s direction ("LPS" for most CTs)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def oriented_lps(image: sitk.Image) -> sitk.Image:
    """``image`` with its axes in LPS order: the image itself when they already are.

    DICOMOrient copies the voxels even when there is nothing to permute, and that copy (2 bytes a
    voxel of a CT, held while the volume is segmented) made peak memory grow faster than the input.
    """
    return image if orientation_of(image) == "LPS" else sitk.DICOMOrient(image, "LPS")


def cut_volume(image: sitk.Image, axis: str, input_size: int, name: str = "volume",
               plane_axis: Optional[int] = None) -> Tuple[np.ndarray, Slicing]:
    """Check and normalise once -> (slices float32 [D, rows, cols] in [0, 1], slicing).

    The slices are an array, or for integer volumes a NormalisedSlices that makes each batch on demand.

    ``plane_axis``: for a 2D image stored as a one-slice volume, the (k, j, i) axis of size 1;
    its single plane is checked and normalised as a 2D image (pancakes.preprocessing.to_grey).
    """
    check_volume(image, name)
    if plane_axis is not None:
        plane = np.take(sitk.GetArrayViewFromImage(image), 0, axis=plane_axis)
        spacing = [s for i, s in enumerate(image.GetSpacing()[::-1]) if i != plane_axis]
        grey = normalise(to_grey(plane, name), name)
        fit = plan_fit(grey.shape, input_size, check_spacings([spacing], 1)[0])
        return grey[None], Slicing(fit, plane_axis, image, image, reorient=False)
    oriented = oriented_lps(image)
    a, shape, spacing = slice_geometry(oriented, axis)
    if min(shape) < 4:
        raise PancakesInputError(f"{name}: slices of {shape[0]}x{shape[1]} voxels along {axis} are too small")
    slicing = Slicing(plan_fit(shape, input_size, spacing), a, oriented, image, reorient=True)
    # Normalising the whole volume at once keeps slices comparable with each other.
    if streamable(oriented):  # integer voxels: normalised batch by batch (slice_source.py)
        return NormalisedSlices(oriented, a, name), slicing
    view = sitk.GetArrayViewFromImage(oriented)  # ``oriented`` is kept in ``slicing``, so it outlives the view
    values = finite_float(view, name)
    # Normalised in place when finite_float made a copy (any non-float32 input): one float32 volume, not two.
    arr = normalise(values, name, out=None if np.shares_memory(values, view) else values)
    return np.moveaxis(arr, a, 0), slicing


def encoded_batches(model, slices: np.ndarray, fit: Fit, step: int, progress: Progress = None,
                    cancel: Cancel = None, name: str = "volume") -> Iterator[Tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (first slice index, model inputs float16 [B, 1, S, S], features [B, C, S, S]) batch by batch;
    honours cancel, reports progress. The inputs go through float16 as cached ones do.

    ``model``: anything with ``encode_batch(Tensor[B, 1, S, S]) -> Tensor[B, C, S, S]`` (pancakes.Pancakes).
    """
    depth = slices.shape[0]
    for start in range(0, depth, step):
        if cancel is not None and cancel():
            raise Cancelled(f"{name}: cancelled after {start} of {depth} slices")
        batch = torch.from_numpy(np.ascontiguousarray(slices[start : start + step]))
        x = to_model_input(batch, fit)
        yield start, x.to(torch.float16), model.encode_batch(x)
        if progress is not None:
            progress(min(start + step, depth), depth)


def decode_batch(model, phi: torch.Tensor, M: int, K: int, sel: List[int], fit: Fit,
                 images: Optional[torch.Tensor] = None, regions: Optional[torch.Tensor] = None,
                 min_probability: float = 0.0, confidence: bool = False) -> np.ndarray:
    """features [B, C, S, S] (and their model inputs [B, 1, S, S], with their superpixels int [B, h, w]
    when known) -> labels uint8 [P, B, rows, cols] at the slice's own size.

    ``min_probability`` > 0 sets to 0 every pixel whose label is less probable than that (the softmax of the
    resized logits, as ``Pancakes.probabilities`` gives it): label k's pixels are then its core
    (pancakes.refine.seed_core). Costs a [K, rows, cols] float map per slice and protocol.
    ``confidence``: instead of the labels, their probability (that softmax's maximum) as uint8 floor(255 p):
    p >= 0.8 exactly where the byte is >= 204, so the cores follow from labels and bytes
    (pancakes.refine.label_prior reads the same bytes).
    """
    logits = model.decode_logits(phi, M, K, sel, images, inner_box(fit), regions)  # [B, P, K, S, S]
    with torch.no_grad():
        if confidence:
            sure = torch.stack([torch.softmax(from_model_output(logits[b].float(), fit), dim=1).amax(dim=1)
                                for b in range(logits.shape[0])])  # [B, P, rows, cols]
            return (sure * 255.0).floor_().clamp_(0, 255).to(torch.uint8).permute(1, 0, 2, 3).cpu().numpy()
        labels = labels_from_logits(logits, fit)  # [B, P, rows, cols]
        if min_probability > 0:
            for b in range(logits.shape[0]):
                sure = torch.softmax(from_model_output(logits[b].float(), fit), dim=1).amax(dim=1)  # [P, rows, cols]
                labels[b][sure < min_probability] = 0
    return labels.permute(1, 0, 2, 3).cpu().numpy()


def decode_step(n_prot: int, K: int, fit: Fit, device: Optional[torch.device] = None) -> int:
    """Slices per decode batch so that model-size logits stay under the device's budget
    (DECODE_BUDGET_BYTES on CPU, DECODE_BUDGET_BYTES_GPU on a GPU)."""
    budget = DECODE_BUDGET_BYTES_GPU if device is not None and torch.device(device).type == "cuda" else DECODE_BUDGET_BYTES
    return max(1, min(32, budget // max(1, n_prot * K * fit.size * fit.size * 4)))


def decode_features(model, features: torch.Tensor, M: int, K: int, sel: Sequence[int], fit: Fit,
                    progress: Progress = None, cancel: Cancel = None,
                    inputs: Optional[torch.Tensor] = None, cache: Optional[RegionCache] = None,
                    min_probability: float = 0.0, confidence: bool = False) -> List[sitk.Image]:
    """Cached features [D, C, S, S] (and model inputs [D, 1, S, S]) -> one uint8 label image per protocol (values 1..K), in slice order
    (size (cols, rows, D); restack_images puts them in the input's geometry). Filled batch by batch
    in place (pancakes.label_stack), like the streamed path: the labels exist once, not twice.
    ``cache``: where each slice's superpixels are kept between decodes when the model pools them;
    ``min_probability``: as in decode_batch (0 outside each label's core); ``confidence``: as in decode_batch
    (the labels' probability as uint8 bytes instead of the labels)."""
    pooled = cache is not None and inputs is not None and bool(getattr(model, "superpixels", False))
    n_prot = len(sel) if sel else M
    depth = features.shape[0]
    out = empty_label_images(n_prot, depth, fit.shape)
    step = decode_step(n_prot, K, fit, getattr(model, "device", None))
    for start in range(0, depth, step):
        if cancel is not None and cancel():
            raise Cancelled(f"decoding cancelled after {start} of {depth} slices")
        images = None if inputs is None else inputs[start : start + step]
        regions = cache.regions(start, images, inner_box(fit)) if pooled else None
        paste_slices(out, start, decode_batch(model, features[start : start + step], M, K, list(sel), fit, images,
                                              regions, min_probability, confidence))
        if progress is not None:
            progress(min(start + step, depth), depth)
    return out


def slice_order_permutation(array_axis: int) -> List[int]:
    """PermuteAxes order that takes a slice-order image ((k, j, i) array [D, rows, cols]) to one whose
    array has the slices along ``array_axis``: the image version of np.moveaxis(a, 0, array_axis)."""
    numpy_order = list(range(1, array_axis + 1)) + [0] + list(range(array_axis + 1, 3))
    return [2 - numpy_order[2 - j] for j in range(3)]


def restack_images(images: List[sitk.Image], slicing: Slicing) -> List[sitk.Image]:
    """P label images in slice order (pancakes.label_stack) -> P label images in the input's geometry.

    Images are taken out of ``images`` as they are placed. Slices along the first array axis of an
    LPS volume (an axial CT) need no voxel moved: each image is returned as it is, with the input's
    geometry. Other cases make one image-sized copy at a time."""
    results = []
    orientation = orientation_of(slicing.original)
    while images:
        img = images.pop(0)
        if slicing.array_axis != 0:
            img = sitk.PermuteAxes(img, slice_order_permutation(slicing.array_axis))
        if slicing.reorient:
            img.CopyInformation(slicing.reference)
            # Already in LPS order (most CTs): the same voxels, so no reoriented copy of each label volume.
            img = img if orientation == "LPS" else sitk.DICOMOrient(img, orientation)
            if img.GetSize() != slicing.original.GetSize():
                raise RuntimeError("re-orientation changed the volume size; this is a bug")
        img.CopyInformation(slicing.original)
        results.append(img)
    return results
