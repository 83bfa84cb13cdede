"""Batched image operations for augmentation: affine matrices, elastic fields, filters.

Every function is deterministic given its inputs (random draws happen in the
callers), works on CPU tensors batched over the images of a set, and keeps
kornia's conventions where the paper's Table 3 was written against them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Table 3's elastic sigmas are pixels at the paper's 128 x 128 training size.
REFERENCE_SIZE = 128


def affine_theta(
    angle_deg: torch.Tensor,
    scale: torch.Tensor,
    translate: torch.Tensor,
    flip: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Output-to-input sampling matrices in grid_sample's normalised coordinates.

    The transform is built in pixel units and conjugated into [-1, 1] so that a
    rotation stays a rotation on non-square images.

    Args:
        angle_deg: [N] rotation of the content, degrees.
        scale: [N] magnification of the content (> 1 zooms in).
        translate: [N, 2] shift of the content as a fraction of (W, H).
        flip: [N, 2] bool, mirror along x (horizontal) and y (vertical).
        size: (H, W).

    Returns:
        [N, 3, 3] homogeneous matrices; ``theta[:, :2]`` feeds F.affine_grid.
    """
    h, w = size
    n = angle_deg.shape[0]
    a = torch.deg2rad(angle_deg.float())
    cos, sin = torch.cos(a), torch.sin(a)
    # Inverse mapping: x_in = R(-a) / s * (x_out - t), flips applied last.
    inv_s = 1.0 / scale.float()
    m = torch.zeros(n, 3, 3)
    m[:, 0, 0] = cos * inv_s
    m[:, 0, 1] = sin * inv_s
    m[:, 1, 0] = -sin * inv_s
    m[:, 1, 1] = cos * inv_s
    m[:, 2, 2] = 1.0
    t_px = translate.float() * torch.tensor([w, h], dtype=torch.float32)
    m[:, :2, 2] = -(m[:, :2, :2] @ t_px[:, :, None])[:, :, 0]
    sign = torch.where(flip, -1.0, 1.0)
    m[:, 0, :] *= sign[:, 0:1]
    m[:, 1, :] *= sign[:, 1:2]
    # Conjugate by the pixel<->normalised scaling (half sizes), x before y.
    half = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0]))
    half_inv = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0]))
    return half_inv @ m @ half


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1D Gaussian kernels: sigma [N] -> [N, 2 * radius + 1]."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x[None, :] / sigma.float().clamp_min(1e-3)[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def separable_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own separable kernel, reflect padding.

    Args:
        x: [N, C, H, W].
        kernels: [N, k] with k odd; every channel of image n uses kernel n.

    Returns:
        [N, C, H, W].
    """
    n, c, h, w = x.shape
    k = kernels.shape[1]
    r = k // 2
    weight = kernels.repeat_interleave(c, dim=0)  # [N*C, k]
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), weight[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), weight[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def coarse_factor(sigma_px: float, size: tuple[int, int]) -> int:
    """Largest power-of-two downsampling that still leaves sigma >= 1.5 coarse pixels."""
    f = 1
    while sigma_px / (2 * f) >= 1.5 and size[0] % (2 * f) == 0 and size[1] % (2 * f) == 0:
        f *= 2
    return f


def elastic_displacement(
    noise: torch.Tensor, sigma_px: torch.Tensor, alpha: torch.Tensor, size: tuple[int, int], factor: int
) -> torch.Tensor:
    """Smooth random displacement in normalised coordinates, kornia's statistics.

    kornia blurs uniform(-1, 1) noise at full resolution with a Gaussian of
    sigma pixels and multiplies by alpha. The field is band-limited, so the same
    statistics come far cheaper from noise drawn at 1/``factor`` resolution with
    the variance of an average-pooled f x f block (1 / (3 f^2)), blurred with
    sigma / f and upsampled bilinearly.

    Args:
        noise: [N, 2, H / factor, W / factor] standard normal draws.
        sigma_px: [N] Gaussian sigma in full-resolution pixels.
        alpha: [N] amplitude.
        size: (H, W) of the output.
        factor: the downsampling used for ``noise``.

    Returns:
        [N, H, W, 2] displacement (x, y) to add to an F.affine_grid grid.
    """
    sigma_c = sigma_px.float() / factor
    radius = max(1, int(math.ceil(3.0 * float(sigma_c.max()))))
    radius = min(radius, min(noise.shape[-2:]) - 1)
    field = noise.float() * (1.0 / math.sqrt(3.0) / factor)
    field = separable_blur(field, gaussian_kernels(sigma_c, radius)) * alpha.float()[:, None, None, None]
    if factor > 1:
        field = F.interpolate(field, size=size, mode="bilinear", align_corners=False)
    return field.permute(0, 2, 3, 1)


def warp(
    images: torch.Tensor, labelmaps: torch.Tensor | None, grid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resample images (bilinear) and label maps (nearest) on one grid.

    Args:
        images: [N, C, H, W] float.
        labelmaps: [N, H, W] integer, or None.
        grid: [N, H, W, 2] sampling positions, normalised, align_corners=False.

    Returns:
        Warped images [N, C, H, W] and label maps [N, H, W] of the input dtype;
        outside the field of view images are 0 and labels are background.
    """
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if labelmaps is None:
        return out, None
    # float32 holds integers exactly far beyond any label count.
    lab = F.grid_sample(labelmaps[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, lab[:, 0].round().to(labelmaps.dtype)


def sharpen(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL/torchvision/kornia sharpness: blend with a 3x3 smoothed copy.

    factor 0 gives the smoothed image, 1 the original, > 1 sharpens. Borders
    keep their original values as in torchvision.

    Args:
        images: [N, 1, H, W]; factor: [N].
    """
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    smooth = images.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(images, kernel[None, None])
    f = factor.float()[:, None, None, None]
    return (smooth + f * (images - smooth)).clamp(0.0, 1.0)


def brightness_contrast(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """Scale about each image's mean by ``contrast``, then add ``brightness``.

    Scaling about the mean (torchvision) rather than about 0 (kornia) keeps
    contrast from also darkening the image. images: [N, 1, H, W]; others [N].
    """
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    c = contrast.float()[:, None, None, None]
    b = brightness.float()[:, None, None, None]
    return ((images - mean) * c + mean + b).clamp(0.0, 1.0)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Blur image n with sigma[n] and a ksize x ksize kernel. images: [N, C, H, W]."""
    return separable_blur(images, gaussian_kernels(sigma, ksize // 2))
