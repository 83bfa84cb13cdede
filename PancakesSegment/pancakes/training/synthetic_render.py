"""Images from synthetic label maps: intensity per label, texture, bias, blur, noise.

One set imitates one imaging domain, so the intensity of each label is drawn
once per set and only jittered per image; texture, bias field, blur, noise and
gamma are drawn per image (Table 3's within-set ranges where it has them).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import augment_ops as ops


def _smooth(rng: np.random.Generator, s: int, cells: int, size: tuple[int, int]) -> torch.Tensor:
    """Perlin-like smooth noise, ~unit std: -> [S, 1, H, W] (bicubic upsampling of a coarse grid)."""
    coarse = torch.from_numpy(rng.standard_normal((s, 1, cells, cells)).astype(np.float32))
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)


def render_images(labelmaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one set of images.

    Args:
        labelmaps: int [S, H, W], labels 0..L.
        rng: source of every random draw.

    Returns:
        float32 [S, H, W] in [0, 1].
    """
    s, h, w = labelmaps.shape
    size = (h, w)
    n_labels = int(labelmaps.max()) + 1
    base = rng.uniform(0.0, 1.0, n_labels)
    if rng.random() < 0.5:
        # Most real images have a dark, empty surround.
        base[0] = rng.uniform(0.0, 0.05)
    jitter = rng.normal(0.0, 0.03, (s, n_labels))
    lut = torch.from_numpy(np.clip(base[None] + jitter, 0.0, 1.0).astype(np.float32))
    lab = torch.from_numpy(labelmaps.astype(np.int64))
    images = torch.gather(lut, 1, lab.reshape(s, -1)).reshape(s, 1, h, w)

    texture_amp = torch.from_numpy(rng.uniform(0.0, 0.08, (s, 1, 1, 1)).astype(np.float32))
    images = images + texture_amp * _smooth(rng, s, int(rng.integers(6, 17)), size)
    bias_amp = torch.from_numpy(rng.uniform(0.0, 0.3, (s, 1, 1, 1)).astype(np.float32))
    images = images * torch.exp(bias_amp * _smooth(rng, s, int(rng.integers(2, 5)), size))

    sigma = torch.from_numpy(rng.uniform(0.1, 1.0, s).astype(np.float32))
    images = ops.gaussian_blur(images, sigma, ksize=5)
    std = torch.from_numpy(rng.uniform(0.0, 0.05, (s, 1, 1, 1)).astype(np.float32))
    images = images + std * torch.from_numpy(rng.standard_normal((s, 1, h, w)).astype(np.float32))

    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    hi = images.amax(dim=(1, 2, 3), keepdim=True)
    images = (images - lo) / (hi - lo).clamp_min(1e-6)
    # Contrast as a gamma: a shared set-level curve, jittered per image, stays in [0, 1].
    gamma = np.exp(rng.uniform(-0.4, 0.4) + rng.normal(0.0, 0.1, s)).astype(np.float32)
    images = images.clamp(0.0, 1.0) ** torch.from_numpy(gamma)[:, None, None, None]
    return images[:, 0].numpy()
