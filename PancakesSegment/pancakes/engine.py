"""The Pancakes inference engine: images or volumes in, label maps per protocol out.

Usage::

    from pancakes import Pancakes
    model = Pancakes.load()                      # bundled model, CUDA when available
    labels = model.segment(images, protocols=8, labels=20)   # [N, M, H, W], values 1..K
    enc = model.encode(images)                   # run the UNet once ...
    p3 = model.decode(enc, 8, 12, which=[2])     # ... then any (M, K, m) from cache
    predictor = model.predictor(volume)          # volumes: pancakes.predictor, the one entry point

Limits, checks and Cancelled live in pancakes.contract (torch-free); they are
re-exported here for callers that imported them from the engine.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from .bundled import bundled_model_path  # noqa: F401 (re-exported; torch-free callers import it from bundled)
from .coarse_intensity import Inner
from .coarse_protocol import apply_coarse, has_queries
from .contract import (DEFAULT_ADAPT, DEFAULT_AXIS, DEFAULT_COARSE, DEFAULT_SUPERPIXELS, Cancel,  # noqa: F401
                       Cancelled, Progress, check_adapt, check_mk, check_which)  # (re-exported)
from .devices import batch_size_for, default_batch_size, resolve_device
from .errors import PancakesInputError
from .model_file import load_torchscript
from .predictor import Predictor
from .superpixel_pooling import available as superpixels_available
from .superpixel_pooling import RegionCache, pool_in_superpixels
from .preprocessing import (Fit, check_spacings, from_model_output, inner_box, labels_from_logits, plan_fit,
                            prepare_images, to_model_input)


@dataclass
class Encoded:
    """Cached features of a collection of 2D images.

    features: one float16 tensor [1, C, S, S] per image (CPU, so GPU memory is
    not held between decodes); fits: how each image sits in the model input;
    inputs: the model inputs, float16 [1, 1, S, S] per image, which the coarse protocol's
    intensity step reads (pancakes.coarse_intensity); empty: decoded without that step;
    regions: each image's superpixels once a pooled decode has segmented them (pancakes.superpixel_pooling).
    """

    features: List[torch.Tensor]
    fits: List[Fit]
    names: List[str] = field(default_factory=list)
    inputs: List[torch.Tensor] = field(default_factory=list)
    regions: RegionCache = field(default_factory=RegionCache)


class Pancakes:
    """A loaded Pancakes model with an encode/decode split (see module docstring)."""

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict, device: torch.device,
                 adapt: float = DEFAULT_ADAPT, coarse: bool = DEFAULT_COARSE,
                 superpixels: bool = DEFAULT_SUPERPIXELS) -> None:
        self.module = module
        self.metadata = metadata
        self.device = device
        self.input_size = int(metadata.get("input_size", 128))
        self.adapt = 0.0
        self.set_adapt(adapt)
        self.coarse = False
        self._groups: dict = {}  # (M, K) -> the coarse protocol's label groups (they depend on the queries only)
        self.set_coarse(coarse)
        self.superpixels = False
        self.set_superpixels(superpixels)

    def set_superpixels(self, superpixels: bool) -> bool:
        """Pull every protocol's boundaries onto each image's edges (pancakes.superpixel_pooling) or not;
        returns what is in effect."""
        if not isinstance(superpixels, (bool, int)) or superpixels not in (0, 1):
            raise PancakesInputError(f"superpixels={superpixels!r}: must be True or False")
        value = bool(superpixels)
        if value and not superpixels_available():
            warnings.warn("scikit-image is not installed: label boundaries stay as the network draws them "
                          "(pip install scikit-image for superpixel pooling)", stacklevel=3)
            value = False
        self.superpixels = value
        return value

    def set_coarse(self, coarse: bool) -> bool:
        """Merge the last protocol into figure and ground (pancakes.coarse_protocol) or keep it fine;
        returns what is in effect."""
        if not isinstance(coarse, (bool, int)) or coarse not in (0, 1):
            raise PancakesInputError(f"coarse={coarse!r}: must be True or False")
        value = bool(coarse)
        if value and not has_queries(self.module):
            warnings.warn("this model file's head has no label queries: every protocol stays fine "
                          "(no coarse protocol)", stacklevel=3)
            value = False
        self.coarse = value
        return value

    def set_adapt(self, adapt: float) -> float:
        """Set the decode-time adaptation strength (0 = off); returns the strength in effect."""
        value = check_adapt(adapt)
        if value > 0 and not hasattr(self.module, "decode_logits_adapted"):
            # Model files exported before the adaptation existed still load; they decode without it.
            warnings.warn("this model file has no decode_logits_adapted (exported by an older version): "
                          "decoding without prototype adaptation; re-export it to enable it", stacklevel=3)
            value = 0.0
        self.adapt = value
        return value

    @classmethod
    def load(cls, path: Union[str, Path, None] = None, device: str = "auto",
             adapt: float = DEFAULT_ADAPT, coarse: bool = DEFAULT_COARSE,
             superpixels: bool = DEFAULT_SUPERPIXELS) -> "Pancakes":
        """Load a TorchScript model file (the bundled one when ``path`` is None).

        ``adapt``: strength of the per-image prototype adaptation at decode time (0 = off).
        ``coarse``: the last of several protocols is merged into figure and ground (False: all fine).
        ``superpixels``: every protocol's boundaries follow each image's edges (False: as the network draws them).
        """
        dev = resolve_device(device)
        module, meta = load_torchscript(bundled_model_path() if path is None else path, dev)
        return cls(module, meta, dev, adapt, coarse, superpixels)

    def default_batch_size(self) -> int:
        """Slices (or images) per UNet forward pass when the caller does not say."""
        return default_batch_size(self.device)

    def encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        """images [B, 1, S, S] in [0, 1] on any device -> features [B, C, S, S] on the model's device."""
        with torch.no_grad():
            return self.module.encode(x.to(self.device))

    def decode_logits(self, features: torch.Tensor, M: int, K: int, sel: List[int],
                      images: Optional[torch.Tensor] = None, inner: Optional[Inner] = None,
                      regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features [B, C, S, S] on any device -> logits [B, P, K, S, S] on the model's device.

        With ``coarse`` on, the last protocol's slot holds its labels merged into two groups
        (slots 3..K never win), sharpened by the intensities of ``images`` [B, 1, S, S] (the model
        inputs; ``inner`` is where the image sits in them) when they are given. Every decode path
        (2D, volumes, streamed) comes through here and passes them. With ``superpixels`` on, every
        protocol's probabilities are then pooled within each image's superpixels (pancakes.superpixel_pooling):
        ``regions`` int [B, h, w] when the caller keeps them (a RegionCache), else segmented here.
        """
        phi = features.to(self.device, torch.float32)
        with torch.no_grad():
            if self.adapt > 0:
                logits = self.module.decode_logits_adapted(phi, M, K, sel, self.adapt)
            else:
                logits = self.module.decode_logits(phi, M, K, sel)
            if self.coarse:
                apply_coarse(self.module, logits, M, K, sel, self._groups, images, inner)
            if self.superpixels and images is not None:
                logits = pool_in_superpixels(logits, images, inner, regions)
        return logits

    # ---- 2D collections -------------------------------------------------
    def encode(self, images: Sequence[np.ndarray], names: Optional[Sequence[str]] = None,
               spacings: Optional[Sequence[Sequence[float]]] = None, batch_size: Optional[int] = None) -> Encoded:
        """Run the UNet once per image. images: list/array of 2D (or RGB) images of any size.

        batch_size: images per forward pass; None picks the device's default.
        """
        batch_size = batch_size_for(self.device, batch_size)
        prepared = prepare_images(images, names)
        sizes = check_spacings(spacings, len(prepared))
        fits = [plan_fit(img.shape, self.input_size, sp) for img, sp in zip(prepared, sizes)]
        feats: List[torch.Tensor] = []
        inputs: List[torch.Tensor] = []
        for start in range(0, len(prepared), batch_size):
            chunk = range(start, min(start + batch_size, len(prepared)))
            x = torch.cat([to_model_input(torch.from_numpy(prepared[i])[None], fits[i]) for i in chunk])
            phi = self.encode_batch(x)
            feats += [f[None].to("cpu", torch.float16) for f in phi]
            inputs += [i[None].to(torch.float16) for i in x]
        names = list(names) if names else [f"image {i}" for i in range(len(prepared))]
        return Encoded(feats, fits, names, inputs)

    def decode(self, encoded: Encoded, protocols: int = 8, labels: int = 20,
               which: Optional[Sequence[int]] = None) -> List[np.ndarray]:
        """Cached features -> one label array [M', H, W] (values 1..K) per image.

        ``which`` selects protocols (0-based); None means all ``protocols``.
        """
        return [labels_from_logits(logits, fit)[0].cpu().numpy()
                for logits, fit in self._logits(encoded, protocols, labels, which)]

    def probabilities(self, encoded: Encoded, protocols: int = 8, labels: int = 20,
                      which: Optional[Sequence[int]] = None) -> List[np.ndarray]:
        """Like :meth:`decode` but soft: one float32 [M', K, H, W] per image (softmax over K)."""
        return [torch.softmax(from_model_output(logits[0], fit), dim=1).cpu().numpy()
                for logits, fit in self._logits(encoded, protocols, labels, which)]

    def _logits(self, encoded: Encoded, M: int, K: int, which: Optional[Sequence[int]]):
        """Yield (logits [1, M', K, S, S] at model size, fit), one image at a time."""
        M, K = check_mk(M, K)
        sel = check_which(which, M)
        inputs = encoded.inputs or [None] * len(encoded.features)
        if self.superpixels:
            # All images' superpixels in one threaded pass, before the one-at-a-time decode below.
            encoded.regions.prefetch([(i, x, inner_box(fit)) for i, (x, fit) in enumerate(zip(inputs, encoded.fits))
                                      if x is not None])
        for i, (phi, x, fit) in enumerate(zip(encoded.features, inputs, encoded.fits)):
            inner = inner_box(fit)
            # Each image's superpixels are segmented once, whatever the later decodes ask for.
            regions = encoded.regions.regions(i, x, inner) if self.superpixels and x is not None else None
            yield self.decode_logits(phi, M, K, sel, x, inner, regions), fit

    def segment(self, images: Sequence[np.ndarray], protocols: int = 8, labels: int = 20) -> np.ndarray:
        """images -> np.ndarray [N, M, H, W] of labels 1..K.

        Images of different sizes give an object array of [M, H_i, W_i] arrays
        instead, since one dense array cannot hold them.
        """
        maps = self.decode(self.encode(images), protocols, labels)
        if len({m.shape for m in maps}) == 1:
            return np.stack(maps)
        arr = np.empty(len(maps), dtype=object)
        arr[:] = maps
        return arr

    # ---- volumes (through pancakes.predictor) ------------------------------
    def predictor(self, image, axis: str = DEFAULT_AXIS, name: str = "volume", plane_axis: Optional[int] = None,
                  batch_size: Optional[int] = None) -> Predictor:
        """A Predictor of one SimpleITK volume: encode once, decode any (M, K, m)."""
        return Predictor(self, image, axis, name, plane_axis, batch_size)

    def encode_volume(self, image, axis: str = DEFAULT_AXIS, batch_size: Optional[int] = None,
                      progress: Progress = None, cancel: Cancel = None) -> Predictor:
        """SimpleITK image -> its Predictor with every slice's features cached."""
        return self.predictor(image, axis, batch_size=batch_size).encode(progress, cancel)

    def decode_volume(self, encoded: Predictor, protocols: int = 8, labels: int = 20,
                      which: Optional[Sequence[int]] = None, progress: Progress = None, cancel: Cancel = None):
        """An encoded Predictor -> list of SimpleITK uint8 label volumes, one per protocol."""
        return encoded.decode(protocols, labels, which, progress, cancel)

    def segment_volume(self, image, protocols: int = 8, labels: int = 20, axis: str = DEFAULT_AXIS,
                       progress: Progress = None, cancel: Cancel = None):
        """SimpleITK image -> M label volumes with the input's origin, spacing and direction (streamed)."""
        return self.predictor(image, axis).segment(protocols, labels, progress, cancel)
