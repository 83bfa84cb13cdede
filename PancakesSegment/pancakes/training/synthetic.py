"""Anatomix-like synthetic sets (paper §3.1 and appendix F.2).

A set is made from one 2D template: a random slice, along a random axis, of a
3D procedural label map (see synthetic_shapes). With probability 0.5 labels
are split into connected components; labels under 20 pixels become background;
labels are renumbered 1..L. Each image of the set then gets its own affine and
elastic warp of that template and is rendered with per-label intensities.

Usage::

    gen = SyntheticGenerator(size=128, n_templates=32, seed=0)
    task = gen.sample_set(np.random.default_rng(1), S=5)
    task.images.shape, task.labelmaps.shape, task.label   # (5,128,128) x2, int
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.measure import label as connected_components

from . import augment_ops as ops
from .augment import WITHIN_SET, StageConfig
from .synthetic_bank import TemplateBank
from .synthetic_render import render_images
from .taskset import TaskSet

MIN_LABEL_PIXELS = 20
# The paper slices 128^3 maps between slice 25 and 100; as fractions of the edge:
SLICE_RANGE = (25 / 128, 100 / 128)


def upsample_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Smoothly resize a label map: int [t, t] -> int64 [size, size].

    Nearest-neighbour upsampling would carry the template's voxel staircase
    into every image; interpolating the one-hot maps and taking the argmax
    gives smooth borders instead.
    """
    lab = torch.from_numpy(labels.astype(np.int64))
    one_hot = F.one_hot(lab, int(lab.max()) + 1).permute(2, 0, 1)[None].float()
    up = F.interpolate(one_hot, size=(size, size), mode="bilinear", align_corners=False)
    return up[0].argmax(0).numpy()


def relabel(labels: np.ndarray, min_pixels: int = MIN_LABEL_PIXELS) -> np.ndarray:
    """Send labels under ``min_pixels`` to 0 and renumber the rest 1..L in order: -> int32."""
    counts = np.bincount(labels.ravel())
    keep = counts >= min_pixels
    keep[0] = False
    lut = np.zeros(counts.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def split_labels(labels: np.ndarray) -> np.ndarray:
    """One label per connected piece (4-connectivity) of each label; 0 stays 0."""
    return connected_components(labels, background=0, connectivity=1)


class SyntheticGenerator:
    """Draws synthetic TaskSets from a bank of 3D templates.

    Args:
        size: output edge H = W.
        n_templates: templates in the bank (built lazily, each on first use).
        seed: bank seed; the sets drawn depend on it and on the rng passed in.
        cache_dir: directory for the bank's .npy cache (see
            synthetic_bank.default_cache_dir()); None keeps it in memory.
        template_size: edge T of the [T, T, T] templates.
        warp: per-image geometric variation; Table 3's within-set affine and
            elastic ranges (their probabilities are ignored: every image warps).
    """

    def __init__(
        self,
        size: int = 128,
        n_templates: int = 32,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        template_size: int = 80,
        warp: StageConfig = WITHIN_SET,
    ) -> None:
        self.size = size
        self.bank = TemplateBank(n_templates, template_size, seed, cache_dir)
        self.warp = warp

    def template_slice(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """A cleaned 2D template: (kind, int32 [size, size] with labels 1..L contiguous)."""
        i = int(rng.integers(self.bank.n_templates))
        vol = self.bank.get(i)
        t = vol.shape[0]
        axis = int(rng.integers(3))
        index = int(rng.integers(round(SLICE_RANGE[0] * t), round(SLICE_RANGE[1] * t) + 1))
        labels = upsample_labels(np.take(vol, index, axis=axis), self.size)
        if rng.random() < 0.5:
            labels = split_labels(labels)
        return self.bank.kind(i), relabel(labels)

    def warp_set(self, template: np.ndarray, rng: np.random.Generator, s: int) -> np.ndarray:
        """S independent affine + elastic warps of one template: int [H, W] -> int32 [S, H, W]."""
        cfg = self.warp
        size = template.shape
        angle = torch.from_numpy(rng.uniform(*cfg.degrees, s))
        scale = torch.from_numpy(rng.uniform(*cfg.scale, s))
        shift = torch.from_numpy(rng.uniform(-cfg.translate, cfg.translate, (s, 2)))
        theta = ops.affine_theta(angle, scale, shift, torch.zeros(s, 2, dtype=torch.bool), size)
        ref = size[0] / ops.REFERENCE_SIZE
        factor = ops.coarse_factor(cfg.sigma[0] * ref, size)
        noise = torch.from_numpy(rng.standard_normal((s, 2, size[0] // factor, size[1] // factor)))
        alpha = torch.from_numpy(rng.uniform(*cfg.alpha, s)) * ref
        sigma = torch.from_numpy(rng.uniform(*cfg.sigma, s)) * ref
        disp = ops.elastic_displacement(noise, sigma, alpha, size, factor)
        grid = F.affine_grid(theta[:, :2].contiguous(), [s, 1, *size], align_corners=False) + disp
        lab = torch.from_numpy(template.astype(np.int64))[None].expand(s, *size).contiguous()
        _, warped = ops.warp(torch.zeros(s, 1, *size), lab, grid)
        return warped.numpy().astype(np.int32)

    def sample_set(self, rng: np.random.Generator, S: int) -> TaskSet:
        """One synthetic set of S images; label is drawn from the labels all images share."""
        if S < 1:
            raise ValueError(f"S must be >= 1, got {S}")
        for _ in range(100):
            kind, template = self.template_slice(rng)
            # Two labels at least, so the set carries a structure, not just a silhouette.
            if template.max() < 2:
                continue
            labelmaps = self.warp_set(template, rng, S)
            task = TaskSet(
                images=np.empty(labelmaps.shape, dtype=np.float32),
                labelmaps=labelmaps,
                label=0,
                dataset="synthetic",
                protocol=kind,
            )
            common = task.common_labels()
            if not common:
                continue
            task.label = int(rng.choice(common))
            task.images = render_images(labelmaps, rng)
            return task
        raise RuntimeError("no usable template slice in 100 draws; the template bank looks empty")
