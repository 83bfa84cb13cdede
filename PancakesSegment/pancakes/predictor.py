"""The one way a volume goes through the model: encode once, then decode any (M, K, m) from the cache.

The batch CLI (pancakes.batch), the Slicer module (PancakesSegmentLib.SegmentationLogic)
and the Python API (Pancakes.encode_volume / decode_volume / segment_volume) all
segment volumes through a Predictor. A 2D image arrives as a one-slice volume
(pancakes.inputs.as_scalar_volume) and is cut in its own plane here, and only here.

Usage::

    predictor = model.predictor(image, axis="axial", name="brain1")   # model: pancakes.Pancakes
    predictor.encode(progress, cancel)        # the UNet, once; features cached (float16, CPU)
    labels = predictor.decode(8, 20)          # M sitk uint8 label volumes, values 1..K, input geometry
    p3 = predictor.decode(8, 12, which=[2])   # another K, one protocol: no UNet
    labels = model.predictor(image).segment(8, 20)   # streamed: no cache, memory bounded by a batch

Test doubles implement ``VolumePredictor`` (and hand it out from a ``predictor()``
method); they do not change this class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple

import SimpleITK as sitk
import torch

from . import volume
from .contract import DEFAULT_AXIS, Cancel, Progress, check_axis, check_batch_size, check_mk, check_which
from .label_stack import empty_label_images, paste_slices
from .memory import release_free_memory
from .errors import PancakesInputError
from .refine.seed_core import SEED_CORE

# Batches between two malloc_trim calls: often enough that the heap does not grow with depth
# (a batch is 2 slices at M=8, K=20), rarely enough that trimming costs nothing measurable.
TRIM_EVERY_BATCHES = 8


class SliceModel(Protocol):
    """What a Predictor needs of a model (pancakes.Pancakes is one)."""

    device: torch.device
    input_size: int
    adapt: float

    def encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        """images [B, 1, S, S] in [0, 1] -> features [B, C, S, S] (no autograd)."""

    def decode_logits(self, features: torch.Tensor, M: int, K: int, sel: List[int],
                      images: Optional[torch.Tensor] = None,
                      inner: Optional[Tuple[int, int, int, int]] = None,
                      regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features [B, C, S, S] and their model inputs [B, 1, S, S] -> logits [B, P, K, S, S];
        sel [] means all M protocols; inner: where the image sits in the input; regions: the
        images' superpixels int [B, h, w] when the caller keeps them (None: segmented there if it pools)."""

    def default_batch_size(self) -> int:
        """Slices per encode batch when the caller does not say."""


class VolumePredictor(Protocol):
    """One volume's inference: what the Slicer logic and the batch runner call."""

    image: sitk.Image

    @property
    def encoded(self) -> bool:
        """True once the features are cached."""

    def encode(self, progress: Progress = None, cancel: Cancel = None) -> "VolumePredictor":
        """Run the UNet over every slice once; later calls do nothing."""

    def decode(self, M: int, K: int, which: Optional[Sequence[int]] = None, progress: Progress = None,
               cancel: Cancel = None) -> List[sitk.Image]:
        """Label volumes (values 1..K, the input's geometry), one per selected protocol."""


@dataclass
class Decoded:
    """The last decode of a Predictor: what it was asked for and the label volumes it gave."""

    key: Tuple  # (M, K, protocols selected, adaptation strength, coarse protocol on, superpixel pooling on)
    labels: List[sitk.Image]


class Predictor:
    """A volume and its cached features (see module docstring)."""

    def __init__(self, model: SliceModel, image: sitk.Image, axis: str = DEFAULT_AXIS, name: str = "volume",
                 plane_axis: Optional[int] = None, batch_size: Optional[int] = None) -> None:
        check_axis(axis)
        self.model = model
        self.image = image
        self.axis = axis
        self.name = name
        self.plane_axis = plane_axis  # set for 2D images stored as one-slice volumes
        self.batch_size = check_batch_size(batch_size) or model.default_batch_size()
        self.features: Optional[volume.EncodedVolume] = None
        self.last: Optional[Decoded] = None  # the labels of the latest decode, for callers that show them

    @property
    def encoded(self) -> bool:
        return self.features is not None

    def encode(self, progress: Progress = None, cancel: Cancel = None) -> "Predictor":
        if self.features is None:
            slices, slicing = volume.cut_volume(self.image, self.axis, self.model.input_size, self.name,
                                                self.plane_axis)
            batches = volume.encoded_batches(self.model, slices, slicing.fit, self.batch_size, progress, cancel,
                                             self.name)
            feats, inputs = [], []
            for _, x, phi in batches:
                feats.append(phi.to("cpu", torch.float16))
                inputs.append(x)
            self.features = volume.EncodedVolume(torch.cat(feats), slicing, self.axis, torch.cat(inputs))
        return self

    def decode(self, M: int, K: int, which: Optional[Sequence[int]] = None, progress: Progress = None,
               cancel: Cancel = None) -> List[sitk.Image]:
        """Cached features -> one uint8 label volume per protocol (values 1..K), input geometry.

        Encodes first when that has not happened. Asking again for the same (M, K, which)
        with the same adaptation, coarse and superpixel settings returns the same label volumes without decoding.
        """
        M, K = check_mk(M, K)
        sel = check_which(which, M)
        key = (M, K, tuple(sel), float(getattr(self.model, "adapt", 0.0)), bool(getattr(self.model, "coarse", False)),
               bool(getattr(self.model, "superpixels", False)))
        if self.last is not None and self.last.key == key:
            return self.last.labels
        self.encode(cancel=cancel)
        enc = self.features
        out = volume.decode_features(self.model, enc.features, M, K, sel, enc.slicing.fit, progress, cancel,
                                     enc.inputs, enc.regions)
        self.last = Decoded(key, volume.restack_images(out, enc.slicing))
        return self.last.labels

    def cores(self, M: int, K: int, which: Sequence[int], min_probability: float = SEED_CORE,
              cancel: Cancel = None) -> List[sitk.Image]:
        """Like :meth:`decode` for protocols ``which``, with 0 wherever the label is less probable than
        ``min_probability``: label k's voxels are its core, the seed a refinement starts from
        (pancakes.refine.seed_core). Not cached; the features are."""
        return self._probable("cores", M, K, which, cancel, min_probability=min_probability)

    def confidence(self, M: int, K: int, which: Sequence[int], cancel: Cancel = None,
                   progress: Progress = None) -> List[sitk.Image]:
        """For protocols ``which``, how probable each voxel's label is: uint8 floor(255 p), input geometry, one
        byte a voxel like the labels. A label's core (:meth:`cores`) is where the byte is at least
        floor(255 SEED_CORE); pancakes.refine.label_prior reads label and byte together. Not cached.
        progress(done, total) hears of the slices decoded: seconds on a CT (11.5 and 12.6 s in two runs at
        512 x 512 x 200 on 2 threads)."""
        return self._probable("confidence", M, K, which, cancel, progress, confidence=True)

    def _probable(self, name: str, M: int, K: int, which: Sequence[int], cancel: Cancel, progress: Progress = None,
                  **decode) -> List[sitk.Image]:
        """A decode of protocols ``which`` that reads each label's probability (volume.decode_features ``decode``)."""
        M, K = check_mk(M, K)
        if not list(which):
            raise PancakesInputError(f"{name}: name the protocols (which), each costs a probability map per slice")
        sel = check_which(which, M)
        self.encode(cancel=cancel)
        enc = self.features
        out = volume.decode_features(self.model, enc.features, M, K, sel, enc.slicing.fit, progress, cancel,
                                     enc.inputs, enc.regions, **decode)
        return volume.restack_images(out, enc.slicing)

    def segment(self, M: int, K: int, progress: Progress = None, cancel: Cancel = None) -> List[sitk.Image]:
        """Encode and decode batch by batch without caching features: memory beyond the input and
        the label volumes stays bounded by the batch, whatever the depth."""
        M, K = check_mk(M, K)
        slices, slicing = volume.cut_volume(self.image, self.axis, self.model.input_size, self.name, self.plane_axis)
        fit = slicing.fit
        # Filled in place, batch by batch: no label volume is ever converted or copied (label_stack.py).
        out = empty_label_images(M, slices.shape[0], fit.shape)
        step = min(self.batch_size, volume.decode_step(M, K, fit, self.model.device))
        for start, x, phi in volume.encoded_batches(self.model, slices, fit, step, progress, cancel, self.name):
            # Through float16 like cached features, so streamed and cached decodes give the same labels
            # (the decode-time adaptation would otherwise flip a few near-tied pixels).
            labels = volume.decode_batch(self.model, phi.to(torch.float16), M, K, [], fit, x)
            paste_slices(out, start, labels)
            if (start // step) % TRIM_EVERY_BATCHES == TRIM_EVERY_BATCHES - 1:
                release_free_memory()  # freed temporaries fragment the heap: RSS would grow with depth
        del slices  # the normalised volume (4 bytes a voxel) is not needed while the images are placed
        release_free_memory()
        return volume.restack_images(out, slicing)
