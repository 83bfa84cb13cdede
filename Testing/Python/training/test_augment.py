"""Set augmentation: alignment of images and labels, label values, set sharing."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from pancakes.training import augment_ops as ops
from pancakes.training.augment import AugmentConfig, PositionConfig, StageConfig, augment_set

S, H = 4, 64
# Intensity of label l: distinct, well separated values in [0, 1].
LEVELS = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def blocks_set(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Label maps of random rectangles (labels 1..5) and images = LEVELS[label]: [S,1,H,W], [S,H,W]."""
    rng = np.random.default_rng(seed)
    labs = np.zeros((S, H, H), dtype=np.int64)
    for s in range(S):
        for lab in range(1, 6):
            y, x = rng.integers(0, H - 20, 2)
            h, w = rng.integers(10, 24, 2)
            labs[s, y:y + h, x:x + w] = lab
    labels = torch.from_numpy(labs)
    return LEVELS[labels][:, None], labels


def interior(labels: torch.Tensor) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has a single label: [S,H,W] bool."""
    lab = labels.numpy()
    same = ndimage.maximum_filter(lab, size=(1, 3, 3)) == ndimage.minimum_filter(lab, size=(1, 3, 3))
    return same


def test_shapes_range_and_label_values() -> None:
    images, labels = blocks_set()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        out, lab = augment_set(images, labels, g)
        assert out.shape == images.shape and out.dtype == torch.float32
        assert lab.shape == labels.shape and lab.dtype == labels.dtype
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert set(lab.unique().tolist()) <= set(labels.unique().tolist())


def test_deterministic_under_generator_seed() -> None:
    images, labels = blocks_set()
    a = augment_set(images, labels, torch.Generator().manual_seed(5))
    b = augment_set(images, labels, torch.Generator().manual_seed(5))
    c = augment_set(images, labels, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_geometry_keeps_images_and_labels_aligned() -> None:
    images, labels = blocks_set(1)
    cfg = AugmentConfig().geometric_only()
    g = torch.Generator().manual_seed(1)
    moved = 0
    for _ in range(10):
        out, lab = augment_set(images, labels, g, cfg)
        moved += int(not torch.equal(lab, labels))
        # Away from label borders the image still equals the function of its label.
        inside = torch.from_numpy(interior(lab))
        err = (out[:, 0] - LEVELS[lab]).abs()[inside]
        assert float((err < 0.02).float().mean()) > 0.99
        # Label-wise means stay at their levels.
        for value in lab.unique().tolist():
            assert abs(float(out[:, 0][lab == value].mean()) - float(LEVELS[value])) < 0.05
    assert moved >= 8


def test_across_set_transforms_are_shared_and_within_set_differ() -> None:
    images, labels = blocks_set(2)
    images, labels = images[:1].expand(S, -1, -1, -1), labels[:1].expand(S, -1, -1)
    off = StageConfig()
    across_only = AugmentConfig(
        within=off,
        across=replace(AugmentConfig().across, affine_p=1.0, elastic_p=1.0).geometric_only(),
        position=PositionConfig(p=0.0),
    )
    g = torch.Generator().manual_seed(3)
    out, lab = augment_set(images, labels, g, across_only)
    assert not torch.equal(lab[0], labels[0])
    for s in range(1, S):
        assert torch.equal(lab[s], lab[0]) and torch.equal(out[s], out[0])
    within_only = AugmentConfig(
        within=replace(AugmentConfig().within, affine_p=1.0, elastic_p=1.0).geometric_only(),
        across=off,
        position=PositionConfig(p=0.0),
    )
    _, lab = augment_set(images, labels, g, within_only)
    assert all(not torch.equal(lab[s], lab[0]) for s in range(1, S))


def test_intensity_flip_only() -> None:
    images, labels = blocks_set(3)
    cfg = AugmentConfig(within=StageConfig(flip_intensity_p=1.0), across=StageConfig(), position=PositionConfig(p=0.0))
    out, lab = augment_set(images, labels, torch.Generator().manual_seed(0), cfg)
    assert torch.equal(lab, labels)
    torch.testing.assert_close(out, 1.0 - images)


def test_position_moves_content_off_centre() -> None:
    images, labels = blocks_set(4)
    cfg = AugmentConfig(within=StageConfig(), across=StageConfig(), position=PositionConfig(p=1.0))
    g = torch.Generator().manual_seed(0)
    shifts = []
    for _ in range(10):
        _, lab = augment_set(images, labels, g, cfg)
        ys, xs = np.nonzero(lab[0].numpy())
        y0, x0 = np.nonzero(labels[0].numpy())
        if ys.size:
            shifts.append(abs(xs.mean() - x0.mean()) + abs(ys.mean() - y0.mean()))
    # Up to a quarter of the size per axis: several pixels on average at 64.
    assert np.mean(shifts) > 4.0


def test_affine_theta_flip_and_shift_are_exact() -> None:
    x = torch.rand(1, 1, 16, 24)
    none = torch.zeros(1)
    flip = ops.affine_theta(none, torch.ones(1), torch.zeros(1, 2), torch.tensor([[True, False]]), (16, 24))
    grid = F.affine_grid(flip[:, :2], [1, 1, 16, 24], align_corners=False)
    torch.testing.assert_close(F.grid_sample(x, grid, align_corners=False), torch.flip(x, dims=[3]))
    shift = ops.affine_theta(none, torch.ones(1), torch.tensor([[0.25, 0.0]]), torch.zeros(1, 2, dtype=torch.bool), (16, 24))
    grid = F.affine_grid(shift[:, :2], [1, 1, 16, 24], align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False)
    # A quarter of 24 pixels to the right, zeros entering on the left.
    torch.testing.assert_close(out[..., 6:], x[..., :-6])
    assert float(out[..., :6].abs().max()) < 1e-6


def test_elastic_field_matches_kornia_statistics() -> None:
    # Blurring uniform(-1, 1) noise with a unit-sum Gaussian of sigma pixels
    # leaves std = (1 / sqrt(3)) / (2 sqrt(pi) sigma); the coarse shortcut must agree.
    sigma, alpha, size = 8.0, 2.0, (128, 128)
    factor = ops.coarse_factor(sigma, size)
    assert factor > 1
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(8, 2, size[0] // factor, size[1] // factor, generator=g)
    disp = ops.elastic_displacement(noise, torch.full((8,), sigma), torch.full((8,), alpha), size, factor)
    expected = alpha / math.sqrt(3.0) / (2.0 * math.sqrt(math.pi) * sigma)
    assert disp.shape == (8, 128, 128, 2)
    assert abs(float(disp.std()) / expected - 1.0) < 0.25
