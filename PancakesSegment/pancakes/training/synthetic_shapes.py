"""Procedural 3D label maps that stand in for TotalSegmentator's (paper F.2).

Each kind imitates one way anatomy is organised, all inside a warped "body":

- ``blobs``: organs as smooth warped ellipsoids packed in soft tissue;
- ``nested``: organs subdivided into sub-parts (shells, lobes, inclusions);
- ``layers``: concentric tissue shells (skin, fat, muscle, bone) around a
  folded core, as in a head or a limb;
- ``vessels``: branching tubular trees through a few tissue regions;
- ``partition``: 20-40 warped, weighted Voronoi cells that fill the space.

Coordinates are in [-1, 1]^3 on a T^3 grid; outputs are uint8 [T, T, T] with
0 as background and labels 1..L (L < 256).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

KINDS: tuple[str, ...] = ("blobs", "nested", "layers", "vessels", "partition")


def smooth_noise(rng: np.random.Generator, size: int, channels: int, cells: int) -> np.ndarray:
    """Smooth random fields with unit standard deviation: -> float32 [channels, T, T, T].

    ``cells`` is the number of independent lumps across the volume. The field is
    smoothed at a coarse resolution and upsampled trilinearly, which is far
    cheaper than smoothing at full resolution and indistinguishable once smooth.
    """
    coarse = max(4, 2 * cells)
    noise = rng.standard_normal((channels, coarse, coarse, coarse)).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=(0, 1.0, 1.0, 1.0), mode="wrap")
    noise /= noise.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    up = F.interpolate(torch.from_numpy(noise)[None], size=(size,) * 3, mode="trilinear", align_corners=True)
    return up[0].numpy()


def warped_grid(rng: np.random.Generator, size: int, strength: float, cells: int = 3) -> np.ndarray:
    """Grid coordinates displaced by a smooth field: -> float32 [3, T, T, T] in ~[-1, 1]."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"))
    return grid + strength * smooth_noise(rng, size, 3, cells)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q.astype(np.float32)


def ellipsoid(coords: np.ndarray, centre: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Squared normalised radius |R^T (x - c) / r|^2 (< 1 inside): [3, ...] -> [...]."""
    d = coords - centre.reshape(3, *([1] * (coords.ndim - 1)))
    local = np.tensordot(rot.T, d, axes=1)
    return np.sum((local / radii.reshape(3, *([1] * (coords.ndim - 1)))) ** 2, axis=0)


def _box(centre: np.ndarray, extent: float, size: int) -> tuple[slice, slice, slice]:
    """Index box around a centre (in [-1, 1]) wide enough for ``extent``."""
    lo = np.floor((centre - extent + 1.0) / 2.0 * (size - 1)).astype(int)
    hi = np.ceil((centre + extent + 1.0) / 2.0 * (size - 1)).astype(int) + 1
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _paint_blob(
    vol: np.ndarray,
    coords: np.ndarray,
    noise: np.ndarray,
    rng: np.random.Generator,
    label: int,
    centre: np.ndarray,
    radii: np.ndarray,
    roughness: float,
    where: np.ndarray | None = None,
) -> None:
    """Paint one warped ellipsoid into ``vol`` (in place), within ``where`` if given."""
    size = vol.shape[0]
    box = _box(centre, float(radii.max()) * (1.0 + roughness) + 0.15, size)
    sub = coords[(slice(None), *box)]
    f = ellipsoid(sub, centre, radii, random_rotation(rng))
    # A random mix of the shared noise channels gives each blob its own bumps.
    w = rng.standard_normal(noise.shape[0]).astype(np.float32)
    bumps = np.tensordot(w / np.linalg.norm(w), noise[(slice(None), *box)], axes=1)
    inside = f * (1.0 + roughness * bumps) < 1.0
    if where is not None:
        inside &= where[box]
    vol[box][inside] = label


def _body(rng: np.random.Generator, coords: np.ndarray) -> np.ndarray:
    """Squared radius of a warped, roughly centred body ellipsoid (< 1 inside)."""
    radii = rng.uniform([0.65, 0.55, 0.65], [0.95, 0.95, 0.95]).astype(np.float32)
    centre = rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    return ellipsoid(coords, centre, radii, random_rotation(rng))


def _sample_inside(rng: np.random.Generator, mask: np.ndarray, n: int) -> np.ndarray:
    """n random points (in [-1, 1]^3) inside a boolean mask (anywhere if it is empty): -> [n, 3]."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        idx = np.arange(mask.size)
    pick = np.unravel_index(rng.choice(idx, size=n), mask.shape)
    return (np.stack(pick, axis=1) / (mask.shape[0] - 1) * 2.0 - 1.0).astype(np.float32)


def _voronoi(coords: np.ndarray, seeds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index of the nearest seed under an additive weight (a power diagram): -> int [...]."""
    best = np.full(coords.shape[1:], np.inf, dtype=np.float32)
    arg = np.zeros(coords.shape[1:], dtype=np.int32)
    for i, (seed, wt) in enumerate(zip(seeds, weights)):
        d = np.sum((coords - seed.reshape(3, *([1] * (coords.ndim - 1)))) ** 2, axis=0) - wt
        closer = d < best
        best[closer] = d[closer]
        arg[closer] = i
    return arg


def _tissues(rng: np.random.Generator, body_r2: np.ndarray, n: int) -> np.ndarray:
    """Body split into soft-tissue regions, maybe under a skin/fat shell: -> uint8 [T, T, T].

    Args:
        body_r2: squared normalised body radius (< 1 inside), [T, T, T].
        n: number of tissue regions (labels 1..n); a shell adds up to two more.
    """
    size = body_r2.shape[0]
    body = body_r2 < 1.0
    # Strongly warped cells so that tissue borders curve like fascia, not planes.
    coords = warped_grid(rng, size, 0.3, cells=3)
    seeds = _sample_inside(rng, body, n)
    vol = (_voronoi(coords, seeds, rng.uniform(0, 0.1, n)) + 1).astype(np.uint8)
    vol[~body] = 0
    if rng.random() < 0.5:
        rho = np.sqrt(body_r2)
        depth = rng.uniform(0.05, 0.15)
        vol[body & (rho > 1.0 - depth)] = n + 1
        if rng.random() < 0.5:
            vol[body & (rho > 1.0 - depth) & (rho < 1.0 - depth / 2)] = n + 2
    return vol


def blobs(rng: np.random.Generator, size: int) -> np.ndarray:
    coords = warped_grid(rng, size, 0.08)
    body_r2 = _body(rng, coords)
    body = body_r2 < 0.95
    vol = _tissues(rng, body_r2, int(rng.integers(1, 4)))
    noise = smooth_noise(rng, size, 4, 4)
    n = int(rng.integers(20, 41))
    next_label = int(vol.max()) + 1
    for centre in _sample_inside(rng, body, n):
        radii = rng.uniform(0.08, 0.3) * rng.uniform(0.5, 1.0, 3).astype(np.float32)
        _paint_blob(vol, coords, noise, rng, next_label, centre, radii, rng.uniform(0.05, 0.4), body)
        next_label += 1
    return vol


def nested(rng: np.random.Generator, size: int) -> np.ndarray:
    coords = warped_grid(rng, size, 0.08)
    body_r2 = _body(rng, coords)
    body = body_r2 < 0.9
    vol = _tissues(rng, body_r2, int(rng.integers(1, 3)))
    noise = smooth_noise(rng, size, 4, 5)
    next_label = int(vol.max()) + 1
    for centre in _sample_inside(rng, body_r2 < 0.6, int(rng.integers(5, 11))):
        radii = (rng.uniform(0.2, 0.45) * rng.uniform(0.6, 1.0, 3)).astype(np.float32)
        organ = np.zeros_like(vol)
        _paint_blob(organ, coords, noise, rng, 1, centre, radii, rng.uniform(0.05, 0.3), body)
        inside = organ == 1
        if inside.sum() < 50:
            continue
        mode = rng.integers(3)
        if mode == 0:
            # Shells: cortex around medulla around a core; smaller ones painted last.
            shrinks = np.sort(rng.uniform(0.3, 0.85, int(rng.integers(1, 4))))[::-1]
            vol[inside] = next_label
            for k, shrink in enumerate(shrinks):
                _paint_blob(vol, coords, noise, rng, next_label + k + 1, centre, radii * shrink, 0.1, inside)
            next_label += len(shrinks) + 1
        elif mode == 1:
            # Lobes: a Voronoi split of the organ.
            m = int(rng.integers(2, 7))
            cells = _voronoi(coords, _sample_inside(rng, inside, m), rng.uniform(0, 0.02, m))
            vol[inside] = next_label + cells[inside]
            next_label += m
        else:
            # Inclusions: small blobs inside the organ (e.g. lesions, cavities).
            vol[inside] = next_label
            next_label += 1
            for c in _sample_inside(rng, inside, int(rng.integers(2, 7))):
                small = (rng.uniform(0.3, 0.6) * radii.min() * rng.uniform(0.6, 1.0, 3)).astype(np.float32)
                _paint_blob(vol, coords, noise, rng, next_label, c, small, 0.2, inside)
                next_label += 1
    return vol


def layers(rng: np.random.Generator, size: int) -> np.ndarray:
    coords = warped_grid(rng, size, 0.06)
    rho = np.sqrt(_body(rng, coords))
    n = int(rng.integers(3, 8))
    thickness = rng.uniform(0.03, 0.12, n)
    vol = np.zeros(rho.shape, dtype=np.uint8)
    bumps = smooth_noise(rng, size, 2, 6)
    outer = 1.0
    for k in range(n):
        # Each boundary wobbles a little so that shells vary in thickness.
        vol[(rho < outer + 0.03 * bumps[k % 2]) & (vol == 0)] = k + 1
        outer -= thickness[k]
    core = rho < outer
    # A folded interface inside the core, as grey matter folds over white matter.
    folds = rho + rng.uniform(0.05, 0.15) * smooth_noise(rng, size, 1, int(rng.integers(6, 12)))[0]
    inner = outer * rng.uniform(0.5, 0.8)
    vol[core] = n + 1
    next_label = n + 2
    deep = core & (folds < inner)
    # Lobes: the folded interior split into a few regions, or kept whole.
    m = int(rng.integers(1, 7))
    cells = _voronoi(warped_grid(rng, size, 0.2), _sample_inside(rng, deep, m), rng.uniform(0, 0.05, m))
    vol[deep] = next_label + cells[deep]
    next_label += m
    noise = smooth_noise(rng, size, 2, 4)
    for centre in _sample_inside(rng, rho < inner * 0.9, int(rng.integers(3, 11))):
        radii = (rng.uniform(0.06, 0.2) * rng.uniform(0.4, 1.0, 3)).astype(np.float32)
        _paint_blob(vol, coords, noise, rng, next_label, centre, radii, 0.3, core)
        next_label += 1
    return vol


def _grow_tree(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    depth: int,
    path: tuple[int, ...],
    out: list[tuple[np.ndarray, float, tuple[int, ...]]],
) -> None:
    """Random branching centre lines, depth-first.

    Appends (point [3], radius in voxels at 80^3, branch path) per step; the
    path (0 = first child, 1 = second) lets the caller label by generation
    (its length) or by subtree (its first entries).
    """
    length = rng.uniform(0.15, 0.4) * 0.8 ** len(path)
    p, d = start.astype(np.float64), direction / np.linalg.norm(direction)
    for _ in range(max(2, int(length / 0.01))):
        # A slow random walk of the direction gives gently curving vessels.
        d = d + rng.normal(0.0, 0.08, 3)
        d /= np.linalg.norm(d)
        p = p + 0.01 * d
        out.append((p.copy(), radius, path))
    if depth == 0 or np.any(np.abs(p) > 0.95):
        return
    for j in range(2):
        child = d + rng.normal(0.0, 0.7, 3)
        _grow_tree(rng, p, child, radius * rng.uniform(0.6, 0.85), depth - 1, path + (j,), out)


def vessels(rng: np.random.Generator, size: int) -> np.ndarray:
    coords = warped_grid(rng, size, 0.08)
    body_r2 = _body(rng, coords)
    body = body_r2 < 1.0
    vol = _tissues(rng, body_r2, int(rng.integers(2, 6)))
    seeds_label = np.zeros(vol.shape, dtype=np.uint8)
    seeds_radius = np.zeros(vol.shape, dtype=np.float32)
    next_label = int(vol.max()) + 1
    for _ in range(int(rng.integers(2, 6))):
        points: list[tuple[np.ndarray, float, tuple[int, ...]]] = []
        root_r = rng.uniform(3.0, 7.0) * size / 80.0
        start = _sample_inside(rng, body, 1)[0]
        _grow_tree(rng, start, rng.standard_normal(3), root_r, int(rng.integers(3, 6)), (), points)
        # Label by generation (trunk, branches, twigs) or by subtree (territories).
        by_generation = rng.random() < 0.5
        keys = sorted({min(len(q), 3) if by_generation else q[:2] for _, _, q in points})
        labels = {k: next_label + i for i, k in enumerate(keys)}
        for p, r, q in points:
            i = np.round((p + 1.0) / 2.0 * (size - 1)).astype(int)
            if np.all((i >= 0) & (i < size)):
                seeds_label[tuple(i)] = labels[min(len(q), 3) if by_generation else q[:2]]
                seeds_radius[tuple(i)] = max(r, 1.0)
        next_label += len(keys)
    if not seeds_label.any():
        return vol
    dist, idx = ndimage.distance_transform_edt(seeds_label == 0, return_indices=True)
    nearest = tuple(idx)
    tube = (dist <= seeds_radius[nearest]) & body
    vol[tube] = seeds_label[nearest][tube]
    return vol


def partition(rng: np.random.Generator, size: int) -> np.ndarray:
    coords = warped_grid(rng, size, rng.uniform(0.1, 0.25), cells=int(rng.integers(2, 5)))
    n = int(rng.integers(20, 41))
    in_body = rng.random() < 0.5
    region = _body(rng, coords) < 1.0 if in_body else np.ones(coords.shape[1:], dtype=bool)
    seeds = _sample_inside(rng, region, n)
    vol = (_voronoi(coords, seeds, rng.uniform(0.0, 0.08, n)) + 1).astype(np.uint8)
    vol[~region] = 0
    return vol


_MAKERS = {"blobs": blobs, "nested": nested, "layers": layers, "vessels": vessels, "partition": partition}


def make_template(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One 3D label map of the given kind: -> uint8 [size, size, size], labels 0..L."""
    vol = _MAKERS[kind](rng, size)
    # Drop labels that ended up empty (overwritten or outside the body).
    present = np.unique(vol)
    lut = np.zeros(256, dtype=np.uint8)
    lut[present[present > 0]] = np.arange(1, int((present > 0).sum()) + 1, dtype=np.uint8)
    return lut[vol]
