"""The Refiner: correct one label (a binary mask) of an image or a volume slice with clicks.

Usage::

    from pancakes import Refiner
    refiner = Refiner.load()                                  # bundled model_weights/refine.pt
    mask = refiner.refine(image, seed, positive=[(40, 52)], negative=[(10, 9)])  # bool [H, W]
    logits = refiner.refine_logits(image, seed, positive=[(40, 52)])             # feed back as previous=
    volume_mask = refiner.refine_volume_slice(volume, axis=0, index=12, seed=mask3d,
                                              positive=[(40, 52)], negative=[], propagate=True)
    window = refiner.volume_window(volume)                    # once per volume
    logits = refiner.refine_slice_of_volume(volume, 0, 12, mask3d[12], positive=[(40, 52)],
                                            window=window)    # one slice: [rows, cols]

Images of any size are fitted into the 128 x 128 model input like the engine does
(longer physical side fills it, the other padded), clicks are mapped into that frame,
and the result is mapped back to the image's own size. On larger images a second pass
sees a crop around the mask and the clicks at the image's own resolution
(pancakes.refine.focus_crop; ``Refiner.load(focus=False)`` leaves it out). Every update's logits get the
clicks' geodesic reach (pancakes.refine.geodesic_prior; ``Refiner.load(geodesic=False)`` leaves it out), and
near the mask's border, the mask's own intensities (pancakes.refine.intensity_prior; ``intensity=False``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..bundled import find_bundled
from ..contract import PROPAGATION_REACH_MM, Cancel, Progress
from ..devices import resolve_device
from ..errors import ModelFileError, PancakesInputError
from ..model_file import load_torchscript
from ..preprocessing import (PERCENTILES, from_model_output, normalise, pixel_size, plan_fit, to_grey,
                             to_model_input)
from ..superpixel_pooling import available as skimage_available
from .clicks import CLICK_SIGMA, check_clicks, click_maps, seed_probability, to_model_coords
from .flip_average import FLIPS, NO_FLIPS, flip_averaged
from .focus_crop import focus_box, shift_clicks
from .frozen import frozen_for_inference
from .geodesic_prior import geodesic_prior
from .intensity_prior import intensity_prior
from .input_checks import (check_fixed_slices, check_voxel_type, check_volume_slice, check_window,
                           checked_label_prior, mask_like, previous_probability)
from .label_prior import label_prior as prior_logits
from .propagation import spread_mask, window_to_unit
from .two_label_walker import WalkCancelled

Clicks = Optional[Sequence[Sequence[float]]]
# The chosen protocol's (labels int [H, W], confidence [H, W]) for pancakes.refine.label_prior; None: none.
LabelPrior = Optional[Tuple[np.ndarray, np.ndarray]]
MODEL_FILE = "refine.pt"
# Propagation (pancakes.refine.propagation) reaches at most PROPAGATION_REACH_MM (pancakes.contract) either side.


def bundled_refiner_path() -> Path:
    """Where the shipped refiner lives: $PANCAKES_REFINE_MODEL, next to the bundled Pancakes model."""
    return find_bundled(MODEL_FILE, "PANCAKES_REFINE_MODEL", "refiner")


class Refiner:
    """A loaded click-refinement model (see module docstring)."""

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict, device: torch.device,
                 flip_average: bool = True, focus: bool = True, geodesic: bool = True,
                 intensity: bool = True, frozen: bool = True) -> None:
        self.module = module
        # Run a frozen, CPU-optimised copy of ``module`` (pancakes.refine.frozen); made at the first update,
        # and again if ``module`` is replaced. False: run ``module`` itself.
        self.frozen = bool(frozen)
        self._net, self._net_of = None, None
        self.metadata = metadata
        self.device = device
        self.input_size = int(metadata.get("input_size", 128))
        self.click_sigma = float(metadata.get("click_sigma_px", CLICK_SIGMA))
        # What the previous channel holds before the first click (1.0, the seed as certain, for files without it).
        self.seed_prior = float(metadata.get("seed_prior", 1.0))
        # Logits averaged over the input and its flips (pancakes.refine.flip_average); False: one pass.
        self.flip_average = bool(flip_average)
        # A second pass at the image's own resolution around the mask and clicks (pancakes.refine.focus_crop);
        # images no larger than the input never get one.
        self.focus = bool(focus)
        # The clicks' geodesic reach added to the logits (pancakes.refine.geodesic_prior); False: none.
        self.geodesic = bool(geodesic)
        if self.geodesic and not skimage_available():
            warnings.warn("scikit-image is not installed: clicks reach only as far as the network spreads them "
                          "(pip install scikit-image for their geodesic reach)", stacklevel=3)
            self.geodesic = False
        # Near the mask's border, the mask's own intensities (pancakes.refine.intensity_prior); False: none.
        self.intensity = bool(intensity)

    @classmethod
    def load(cls, path: Union[str, Path, None] = None, device: str = "auto", flip_average: bool = True,
             focus: bool = True, geodesic: bool = True, intensity: bool = True, frozen: bool = True) -> "Refiner":
        """Load a refiner TorchScript file (the bundled one when ``path`` is None).

        ``flip_average``: average each update over the image and its flips (four passes; False: one).
        ``focus``: on images larger than the model input, a second pass at their own resolution around the
        mask and the clicks (pancakes.refine.focus_crop; False: the whole image only).
        ``geodesic``: add the clicks' geodesic reach to every update (pancakes.refine.geodesic_prior).
        ``intensity``: near the mask's border, add what the mask's own intensities say (pancakes.refine.
        intensity_prior), last, on the logits with everything else.
        ``frozen``: run the network frozen and optimised for the CPU (pancakes.refine.frozen; the same logits to
        within about 2e-5, each pass about a quarter faster); False: as loaded."""
        dev = resolve_device(device)
        path = bundled_refiner_path() if path is None else Path(path)
        module, meta = load_torchscript(path, dev)
        if meta.get("kind") != "refine":
            raise ModelFileError(f"{path}: a {meta.get('kind')!r} model, not a click refiner (kind 'refine')")
        return cls(module, meta, dev, flip_average, focus, geodesic, intensity, frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs [B, 5, S, S] on the refiner's device -> logits [B, 1, S, S], flip-averaged
        when ``flip_average`` is on. Every update goes through here (benchmarks pass it as the net)."""
        with torch.no_grad():
            return flip_averaged(self._network(), x, FLIPS if self.flip_average else NO_FLIPS)

    def _network(self):
        """What runs the passes: ``module`` frozen for the CPU when ``frozen`` (made once per module), else itself."""
        if not self.frozen:
            return self.module
        if self._net_of is not self.module:
            # A fixed example (the image channel random, the rest empty) to check the frozen copy against.
            example = torch.zeros(1, 5, self.input_size, self.input_size)
            example[:, 0] = torch.rand(self.input_size, self.input_size, generator=torch.Generator().manual_seed(0))
            self._net = frozen_for_inference(self.module, self.device, example.to(self.device))
            self._net_of = self.module
        return self._net

    # ---- 2D images ---------------------------------------------------------
    def refine_logits(self, image: np.ndarray, seed_mask: Optional[np.ndarray], positive: Clicks = None,
                      negative: Clicks = None, previous: Optional[np.ndarray] = None,
                      spacing: Tuple[float, float] = (1.0, 1.0), label_prior: LabelPrior = None) -> np.ndarray:
        """Logits float32 [H, W] of the refined mask (> 0 is inside); see :meth:`refine`."""
        grey = to_grey(image, "image")
        sp = pixel_size(spacing, 2, "spacing")
        return self._logits(normalise(grey, "image"), seed_mask, positive, negative, previous, sp, label_prior)

    def refine(self, image: np.ndarray, seed_mask: Optional[np.ndarray], positive: Clicks = None,
               negative: Clicks = None, previous: Optional[np.ndarray] = None,
               spacing: Tuple[float, float] = (1.0, 1.0), label_prior: LabelPrior = None) -> np.ndarray:
        """Refine ``seed_mask`` on ``image`` with clicks -> bool [H, W].

        image: 2D (or RGB) array [H, W]; seed_mask: [H, W] (nonzero = inside; None = empty);
        positive / negative: (row, col) pixel positions that belong / do not belong to the
        structure; previous: the last result of this session at [H, W], as logits (any
        float range), a float probability in [0, 1] or an integer/bool mask (nonzero = inside);
        None uses the seed. Pass all
        clicks of the session each time, with the last logits as ``previous``.
        spacing: (row, col) pixel size, for non-square pixels.
        label_prior: the chosen protocol's (labels int [H, W], confidence float [H, W] in [0, 1], or uint8
        read as /255) when the seed is one of its labels: pixels sharing a positive click's label are pushed
        in (pancakes.refine.label_prior). The returned logits include it, so feed them back as they are.
        """
        return self.refine_logits(image, seed_mask, positive, negative, previous, spacing, label_prior) > 0

    def _logits(self, norm: np.ndarray, seed_mask, positive: Clicks, negative: Clicks,
                previous: Optional[np.ndarray], spacing, label_prior: LabelPrior = None) -> np.ndarray:
        shape = norm.shape
        seed = mask_like(seed_mask, shape, "seed_mask")
        prob = seed_probability(seed, self.seed_prior) if previous is None else previous_probability(previous, shape)
        pos = check_clicks(positive, shape, "positive")
        neg = check_clicks(negative, shape, "negative")
        prior = None if label_prior is None else checked_label_prior(label_prior, shape)
        out = self._network_logits(norm, seed, prob, pos, neg, spacing)
        box = focus_box(prob > 0.5, list(pos) + list(neg), self.input_size, spacing) if self.focus else None
        if box is not None:
            crop = self._network_logits(norm[box], seed[box], prob[box], shift_clicks(pos, box),
                                        shift_clicks(neg, box), spacing)
            out[box] = (out[box] + crop) / 2
        if self.geodesic:
            out += self._geodesic_logits(norm, pos, neg, spacing)
        if prior is not None:
            out += prior_logits(*prior, pos)
        if self.intensity:
            out += self._intensity_logits(norm, out, pos, spacing)
        return out

    def _geodesic_logits(self, norm: np.ndarray, pos, neg, spacing) -> np.ndarray:
        """The clicks' geodesic reach, computed in the model frame where it was chosen: norm float [H, W],
        checked clicks -> float32 [H, W] at the image's own size."""
        if not pos and not neg:
            return np.zeros(norm.shape, np.float32)
        fit = plan_fit(norm.shape, self.input_size, tuple(float(s) for s in spacing))
        frame = to_model_input(torch.from_numpy(np.ascontiguousarray(norm, np.float32))[None], fit)[0, 0].numpy()
        extra = geodesic_prior(frame, to_model_coords(pos, fit), to_model_coords(neg, fit))
        return from_model_output(torch.from_numpy(extra)[None, None], fit)[0, 0].numpy()

    def _intensity_logits(self, norm: np.ndarray, logits: np.ndarray, pos, spacing) -> np.ndarray:
        """The mask's own intensities, computed in the model frame where they were chosen, without its padding
        (which would count as outside): norm, logits float [H, W] -> float32 [H, W] at the image's own size."""
        if not pos:
            return np.zeros(norm.shape, np.float32)
        fit = plan_fit(norm.shape, self.input_size, tuple(float(s) for s in spacing))
        planes = torch.from_numpy(np.stack([norm, logits]).astype(np.float32))
        (t, l), (h, w) = fit.offset, fit.inner
        frame_image, frame_logits = to_model_input(planes, fit)[:, 0, t:t + h, l:l + w].numpy()
        extra = np.zeros((1, 1, fit.size, fit.size), np.float32)
        extra[0, 0, t:t + h, l:l + w] = intensity_prior(frame_image, frame_logits, pos)
        return from_model_output(torch.from_numpy(extra), fit)[0, 0].numpy()

    def _network_logits(self, norm: np.ndarray, seed: np.ndarray, prob: np.ndarray, pos, neg,
                        spacing) -> np.ndarray:
        """One pass over an image fitted into the model input: norm, prob float [H, W], seed bool [H, W],
        checked clicks -> logits float32 [H, W]."""
        fit = plan_fit(norm.shape, self.input_size, tuple(float(s) for s in spacing))
        planes = torch.from_numpy(np.stack([norm, seed.astype(np.float32), prob]).astype(np.float32, copy=False))
        x_img, x_seed, x_prev = to_model_input(planes, fit)  # each [1, S, S]
        maps = click_maps(to_model_coords(pos, fit), to_model_coords(neg, fit), self.input_size, self.click_sigma)
        # The seed channel is binary in training; resizing makes it soft, so re-binarise.
        x = torch.cat([x_img, (x_seed > 0.5).float(), torch.from_numpy(maps), x_prev.clamp(0, 1)])[None]
        logits = self.forward(x.to(self.device))
        return from_model_output(logits.float().cpu(), fit)[0, 0].numpy().copy()

    # ---- volumes -----------------------------------------------------------
    @staticmethod
    def volume_window(volume_array: np.ndarray) -> Tuple[float, float]:
        """(low, high) intensities of a volume [D0, D1, D2] mapped to 0 and 1: as
        preprocessing.normalise, from a strided sample of at most ~2M voxels so that large
        volumes stay cheap. One window serves every slice, so neighbouring slices look alike;
        an interactive caller computes it once per volume and passes it as ``window`` to
        :meth:`refine_slice_of_volume` (the sample alone costs more than refining a slice)."""
        vol = np.asarray(volume_array)
        check_voxel_type(vol)
        if vol.size == 0:
            raise PancakesInputError(f"volume_array: shape {tuple(vol.shape)} holds no voxels")
        flat = vol.reshape(-1)
        sample = flat if flat.size <= 2_000_000 else flat[:: flat.size // 1_000_000]
        sample = sample.astype(np.float32)
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            raise PancakesInputError("volume_array: contains only NaN or infinite values")
        lo, hi = (float(v) for v in np.percentile(sample, PERCENTILES))
        if hi <= lo:
            lo, hi = float(sample.min()), float(sample.max())
        if hi <= lo:
            raise PancakesInputError(f"volume_array: volume is constant (every voxel is {lo:g}); nothing to segment")
        return lo, hi

    def refine_slice_of_volume(self, volume_array: np.ndarray, axis: int, index: int,
                               seed_slice: Optional[np.ndarray], positive: Clicks = None, negative: Clicks = None,
                               previous: Optional[np.ndarray] = None, spacing: Optional[Sequence[float]] = None,
                               window: Optional[Tuple[float, float]] = None,
                               label_prior: LabelPrior = None) -> np.ndarray:
        """Logits float32 [rows, cols] of slice ``index`` along array ``axis`` of a volume (> 0 is inside).

        Reads only that slice of ``volume_array`` [D0, D1, D2] (a view of a large volume is
        never copied); rows and columns are the two other array axes in order. seed_slice:
        the slice's seed mask [rows, cols] (None = empty); clicks are (row, col) in the slice;
        previous: last logits of this slice [rows, cols]; spacing: voxel size per array axis
        (D0, D1, D2); window: (low, high) from :meth:`volume_window` of this volume, computed
        here when None; label_prior: the chosen protocol's (labels, confidence) on this slice [rows, cols],
        as in :meth:`refine`. :meth:`refine_volume_slice` refines its clicked slice with this method,
        so both give the same logits.
        """
        vol, axis, index = check_volume_slice(volume_array, axis, index)
        plane = [a for a in range(3) if a != axis]
        seed = mask_like(seed_slice, tuple(vol.shape[a] for a in plane), "seed_slice")
        lo, hi = self.volume_window(vol) if window is None else check_window(window)
        sp = (1.0, 1.0) if spacing is None else tuple(pixel_size(spacing, 3, "spacing")[a] for a in plane)
        # One window for the whole volume, applied to this slice only: neighbouring slices
        # look alike, and a large volume is never copied as float.
        image = window_to_unit(np.take(vol, index, axis=axis), (lo, hi))
        return self._logits(image, seed, positive, negative, previous, sp, label_prior)

    def refine_volume_slice(self, volume_array: np.ndarray, axis: int, index: int, seed: Optional[np.ndarray],
                            positive: Clicks = None, negative: Clicks = None,
                            previous: Optional[np.ndarray] = None, propagate: bool = False,
                            spacing: Optional[Sequence[float]] = None, with_logits: bool = False,
                            label_prior: LabelPrior = None, progress: Progress = None, cancel: Cancel = None,
                            reach_mm: Optional[float] = PROPAGATION_REACH_MM,
                            fixed_slices: Optional[Sequence[int]] = None,
                            window: Optional[Tuple[float, float]] = None):
        """Refine the slice ``index`` along array ``axis`` of a volume -> bool mask like the volume.

        volume_array: [D0, D1, D2]; seed: the current 3D mask [D0, D1, D2] (None = empty);
        clicks are (row, col) in the slice, whose rows and columns are the two other array
        axes in order; previous: last logits of this slice [rows, cols]. One intensity
        window serves the whole volume so neighbouring slices look alike. Only that slice changes,
        unless ``propagate``: then the refined slice's label spreads to its neighbours in both directions
        by a 3D random walker seeded on that slice (pancakes.refine.propagation), as far as the structure's
        intensity goes and at most ``reach_mm`` from the clicked slice (PROPAGATION_REACH_MM; at least the
        adjacent slices; None: no limit). The slices it reaches are replaced whole; the others keep their seed.
        fixed_slices: indices along ``axis`` of slices whose ``seed`` is settled (the user refined them with
        clicks): they keep it, and within the reach they seed the walker too, so the label is filled in between
        them and the clicked slice (an empty one stops the spreading there).
        spacing: voxel size per array axis (for non-square slice pixels, the walker and the reach; None: 1 mm).
        with_logits: return (mask, logits float32 [rows, cols] of the clicked slice), the
        logits to pass as ``previous`` at the next click of this slice: the refiner was
        trained on its own probabilities there, and a thresholded mask loses ~0.01 Dice.
        label_prior: the chosen protocol's (labels, confidence) on the clicked slice, as in
        :meth:`refine_slice_of_volume`. The clicked slice goes through :meth:`refine_slice_of_volume`, which
        refines one slice without the 3D seed (what an interactive caller uses).
        progress(done, total): (0, 1) before the spreading and (1, 1) after it (one solve, under a second).
        cancel(): asked before the spreading and between the solver's iterations; True keeps only the clicked
        slice's change.
        window: (low, high) from :meth:`volume_window`, computed from ``volume_array`` when None; pass the whole
        volume's when ``volume_array`` is a slab of it (the Slicer logic passes the slabs within the reach), so
        that the slab is seen as in the whole volume.
        """
        vol, axis, index = check_volume_slice(volume_array, axis, index)
        out = mask_like(seed, vol.shape, "seed")
        window = self.volume_window(vol) if window is None else check_window(window)
        depth = vol.shape[axis]

        def put(i: int, mask: np.ndarray) -> None:
            index_tuple = [slice(None)] * 3
            index_tuple[axis] = i
            out[tuple(index_tuple)] = mask

        logits = self.refine_slice_of_volume(vol, axis, index, np.take(out, index, axis=axis), positive, negative,
                                             previous, spacing, window, label_prior)
        refined = logits > 0
        put(index, refined)
        if propagate:
            voxel = (1.0, 1.0, 1.0) if spacing is None else pixel_size(spacing, 3, "spacing")
            limit = reach_in_slices(reach_mm, voxel[axis], depth)
            # One solve, under a second: said before and after, and a cancel before or during it keeps the clicked
            # slice alone.
            if progress is not None:
                progress(0, 1)
            if refined.any() and (cancel is None or not cancel()):
                fixed = {i: np.take(out, i, axis=axis) for i in check_fixed_slices(fixed_slices, index, depth)}
                try:
                    spread = spread_mask(vol, axis, index, refined, window, voxel, limit, fixed, cancel)
                except WalkCancelled:
                    spread = {}
                for i, mask in spread.items():
                    if i != index and i not in fixed:
                        put(i, mask)
            if progress is not None:
                progress(1, 1)
        return (out, logits) if with_logits else out


def reach_in_slices(reach_mm: Optional[float], thickness: float, depth: int) -> int:
    """How many slices propagation may go either side: ``reach_mm`` over the slice ``thickness`` (mm), at least
    one; None: the whole ``depth``."""
    if reach_mm is None:
        return depth
    if isinstance(reach_mm, bool) or not isinstance(reach_mm, (int, float)) or not np.isfinite(reach_mm) \
            or reach_mm <= 0:
        raise PancakesInputError(f"reach_mm {reach_mm!r}: expected a positive distance in mm, or None for no limit")
    return max(1, int(np.floor(reach_mm / thickness + 1e-9)))


