"""Set augmentation: the paper's Table 3 plus random position and zoom.

Within-set augmentations draw their parameters independently per image (they
make the images of a set differ); across-set augmentations draw once per set and
apply the same to every image (they make new tasks). On top of Table 3, every
image may be shifted and the whole set zoomed, because real data are mostly
centred and a model trained on them learns position instead of content.

Usage::

    g = torch.Generator().manual_seed(0)
    images, labels = augment_set(images, labels, g)   # [S,1,H,W], [S,H,W]
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from . import augment_ops as ops


@dataclass(frozen=True)
class StageConfig:
    """Probabilities p and uniform ranges of one row group of Table 3.

    Ranges are (low, high); ``translate`` is the largest shift as a fraction of
    the size; elastic ``sigma`` is in pixels at 128 x 128 (scaled with size).
    """

    affine_p: float = 0.0
    degrees: tuple[float, float] = (0.0, 0.0)
    translate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    bc_p: float = 0.0
    brightness: tuple[float, float] = (0.0, 0.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    elastic_p: float = 0.0
    alpha: tuple[float, float] = (1.0, 1.0)
    sigma: tuple[float, float] = (7.0, 7.0)
    sharp_p: float = 0.0
    sharpness: float = 0.0
    flip_intensity_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    noise_p: float = 0.0
    noise_mean: tuple[float, float] = (0.0, 0.05)
    noise_std: tuple[float, float] = (0.0, 0.05)
    hflip_p: float = 0.0
    vflip_p: float = 0.0

    def geometric_only(self) -> StageConfig:
        """The same stage with every intensity augmentation switched off."""
        return replace(self, bc_p=0.0, sharp_p=0.0, flip_intensity_p=0.0, blur_p=0.0, noise_p=0.0)


# Table 3 (a): within-set, independent per image.
WITHIN_SET = StageConfig(
    affine_p=0.25, degrees=(-25.0, 25.0), translate=0.1, scale=(0.9, 1.1),
    bc_p=0.5, brightness=(-0.1, 0.1), contrast=(0.5, 1.5),
    elastic_p=0.8, alpha=(1.0, 2.5), sigma=(7.0, 9.0),
    sharp_p=0.25, sharpness=3.0,
    flip_intensity_p=0.5,
    blur_p=0.25, blur_sigma=(0.1, 1.0),
    noise_p=0.25, noise_mean=(0.0, 0.05), noise_std=(0.0, 0.05),
)

# Table 3 (b): across-set, one draw per set.
ACROSS_SET = StageConfig(
    affine_p=0.5, degrees=(0.0, 360.0), translate=0.2, scale=(0.8, 1.1),
    bc_p=0.5, brightness=(-0.1, 0.1), contrast=(0.8, 1.2),
    elastic_p=0.5, alpha=(1.0, 2.0), sigma=(6.0, 8.0),
    sharp_p=0.5, sharpness=5.0,
    blur_p=0.5, blur_sigma=(0.1, 1.1),
    noise_p=0.5, noise_mean=(0.0, 0.05), noise_std=(0.0, 0.05),
    hflip_p=0.5, vflip_p=0.5,
)


@dataclass(frozen=True)
class PositionConfig:
    """Not in Table 3: a zoom per set (log-uniform) and a shift per image.

    With probability ``p`` the set is zoomed by a factor in ``zoom`` (< 1 shows
    more than the image, padded with background; > 1 crops), and each image is
    shifted independently by up to ``shift`` of its size along each axis.
    """

    p: float = 0.8
    zoom: tuple[float, float] = (0.7, 1.4)
    shift: float = 0.25


@dataclass(frozen=True)
class AugmentConfig:
    within: StageConfig = WITHIN_SET
    across: StageConfig = ACROSS_SET
    position: PositionConfig = field(default_factory=PositionConfig)

    def geometric_only(self) -> AugmentConfig:
        """Geometric transforms only: images move but keep their intensities."""
        return replace(self, within=self.within.geometric_only(), across=self.across.geometric_only())


def _uniform(n: int, bounds: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=g)


def _coin(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def _sharer(n: int, s: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Broadcast across-set draws (n == 1) to all S images; within-set draws pass through.

    Every parameter is drawn whether or not its augmentation fires, so the
    random stream, hence the output, depends only on the generator state.
    """

    def share(value: torch.Tensor) -> torch.Tensor:
        return value.expand(s, *value.shape[1:]) if n == 1 else value

    return share


def _geometry(
    cfg: StageConfig, n: int, s: int, size: tuple[int, int], g: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Affine matrices [S, 3, 3] (or None) and elastic displacement [S, H, W, 2] (or None)."""
    share = _sharer(n, s)
    on = share(_coin(n, cfg.affine_p, g))
    angle = share(_uniform(n, cfg.degrees, g))
    scale = share(_uniform(n, cfg.scale, g))
    shift = share(_uniform(2 * n, (-cfg.translate, cfg.translate), g).reshape(n, 2))
    flip = share(torch.stack([_coin(n, cfg.hflip_p, g), _coin(n, cfg.vflip_p, g)], dim=1))
    theta = None
    if bool(on.any()) or bool(flip.any()):
        angle = torch.where(on, angle, 0.0)
        scale = torch.where(on, scale, 1.0)
        shift = torch.where(on[:, None], shift, 0.0)
        theta = ops.affine_theta(angle, scale, shift, flip, size)

    el_on = share(_coin(n, cfg.elastic_p, g))
    ref = size[0] / ops.REFERENCE_SIZE
    # Scaling sigma and alpha together keeps the field's look independent of size.
    alpha = _uniform(n, cfg.alpha, g) * ref
    sigma = _uniform(n, cfg.sigma, g) * ref
    factor = ops.coarse_factor(cfg.sigma[0] * ref, size)
    disp = None
    if bool(el_on.any()):
        noise = torch.randn(n, 2, size[0] // factor, size[1] // factor, generator=g)
        d = ops.elastic_displacement(noise, sigma, alpha, size, factor)
        disp = share(d) * el_on[:, None, None, None]
    return theta, disp


def _position(cfg: PositionConfig, s: int, size: tuple[int, int], g: torch.Generator) -> torch.Tensor | None:
    on = bool(_coin(1, cfg.p, g))
    log_zoom = _uniform(1, (math.log(cfg.zoom[0]), math.log(cfg.zoom[1])), g)
    shift = _uniform(2 * s, (-cfg.shift, cfg.shift), g).reshape(s, 2)
    if not on:
        return None
    zoom = torch.exp(log_zoom).expand(s)
    return ops.affine_theta(torch.zeros(s), zoom, shift, torch.zeros(s, 2, dtype=torch.bool), size)


def _intensity(images: torch.Tensor, cfg: StageConfig, n: int, g: torch.Generator) -> torch.Tensor:
    """Table 3's intensity augmentations in the table's order. images: [S, 1, H, W]."""
    s = images.shape[0]
    share = _sharer(n, s)

    def apply(mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.where(mask[:, None, None, None], out, images)

    on = share(_coin(n, cfg.bc_p, g))
    b = share(_uniform(n, cfg.brightness, g))
    c = share(_uniform(n, cfg.contrast, g))
    if bool(on.any()):
        images = apply(on, ops.brightness_contrast(images, b, c))
    on = share(_coin(n, cfg.sharp_p, g))
    f = share(_uniform(n, (0.0, cfg.sharpness), g))
    if bool(on.any()):
        images = apply(on, ops.sharpen(images, f))
    on = share(_coin(n, cfg.flip_intensity_p, g))
    if bool(on.any()):
        images = apply(on, 1.0 - images)
    on = share(_coin(n, cfg.blur_p, g))
    sigma = share(_uniform(n, cfg.blur_sigma, g))
    if bool(on.any()):
        images = apply(on, ops.gaussian_blur(images, sigma, ksize=5))
    on = share(_coin(n, cfg.noise_p, g))
    mean = share(_uniform(n, cfg.noise_mean, g))
    std = share(_uniform(n, cfg.noise_std, g))
    if bool(on.any()):
        noise = torch.randn(images.shape, generator=g) * std[:, None, None, None] + mean[:, None, None, None]
        images = apply(on, (images + noise).clamp(0.0, 1.0))
    return images


def augment_set(
    images: torch.Tensor,
    labelmaps: torch.Tensor,
    generator: torch.Generator,
    config: AugmentConfig = AugmentConfig(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment one set: geometry in a single resampling, then intensities.

    Args:
        images: [S, 1, H, W] float in [0, 1].
        labelmaps: [S, H, W] integer labels.
        generator: the only source of randomness.
        config: probabilities and ranges (Table 3 and :class:`PositionConfig`).

    Returns:
        images [S, 1, H, W] float in [0, 1] and labelmaps [S, H, W] of the input
        dtype, holding only values from the input label maps (and 0).
    """
    s, _, h, w = images.shape
    size = (h, w)
    theta = torch.eye(3).expand(s, 3, 3)
    disp = torch.zeros(s, h, w, 2)
    moved = False
    # Output->input matrices compose right to left: the content is moved by the
    # across-set transform first, then per image, then by the position change.
    for cfg, n in ((config.across, 1), (config.within, s)):
        t, d = _geometry(cfg, n, s, size, generator)
        if t is not None:
            theta, moved = theta @ t, True
        if d is not None:
            disp, moved = disp + d, True
    p = _position(config.position, s, size, generator)
    if p is not None:
        theta, moved = theta @ p, True
    images = images.float()
    if moved:
        grid = torch.nn.functional.affine_grid(theta[:, :2].contiguous(), [s, 1, h, w], align_corners=False) + disp
        images, labelmaps = ops.warp(images, labelmaps, grid)
    images = _intensity(images, config.within, s, generator)
    images = _intensity(images, config.across, 1, generator)
    return images.clamp(0.0, 1.0), labelmaps
