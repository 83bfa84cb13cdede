"""Cut real volumes into a bank of 2D slices (size x size) and store it as .npz.

Each volume is resampled per slicing axis onto an isotropic in-plane grid whose
spacing fits the larger in-plane extent into ``size`` pixels; the smaller extent is
padded, never stretched, so physical aspect ratios survive. Images are normalised per
volume to [0, 1] (0.5/99.5 percentiles) before cutting, and slices that show little
image or no label are skipped.

The bank of one dataset is a dict of arrays (see :func:`build_arrays`); label slices
that several volumes share (atlases on a common template grid) are stored once.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
from skimage.transform import downscale_local_mean

from .bank_file import BANK_FORMAT, load_arrays, save_arrays  # noqa: F401  (re-exported)
from .real_volume import RealDataset, normalise, relabel_lut, slice_axes, unique_values

# A label counts as present in a slice from this many pixels on: single stray pixels
# make targets nobody could segment (the paper's synthetic sets drop labels < 20 px
# at 128^2; real structures are rarer, so we keep smaller ones).
MIN_LABEL_PIXELS = 10
# Slices where fewer than this fraction of pixels show image (> 0.05) are skipped.
MIN_CONTENT = 0.05
# 2D images are tiled at these downscale factors, windows overlapping by half.
TILE_SCALES = (1, 2)

Log = Callable[[str], None]


def axis_grid(image: sitk.Image, axis: int, size: int
              ) -> Tuple[List[int], List[float], List[float]]:
    """Output size, spacing and origin (SimpleITK order) for cutting along ``axis``.

    In-plane spacing s = larger in-plane extent / size, both in-plane sizes = size.
    Through-plane: native slices when they are at least s apart (thick slices are not
    invented), else steps of s. The grid is centred on the image.
    """
    n = np.array(image.GetSize(), dtype=float)
    sp = np.array(image.GetSpacing(), dtype=float)
    extent = n * sp
    plane = [i for i in range(3) if i != axis]
    s = float(extent[plane].max()) / size
    out_sp = np.full(3, s)
    out_n = np.full(3, size)
    if sp[axis] >= s:
        out_sp[axis], out_n[axis] = sp[axis], n[axis]
    else:
        out_n[axis] = max(1, int(round(extent[axis] / s)))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint(((n - 1) / 2).tolist()))
    origin = centre - direction @ ((out_n - 1) / 2 * out_sp)
    return [int(v) for v in out_n], out_sp.tolist(), origin.tolist()


def _to_slices(arr: np.ndarray, axis: int) -> np.ndarray:
    """[z, y, x] array -> [n, rows, cols] slices along SimpleITK ``axis``."""
    slices = np.moveaxis(arr, 2 - axis, 0)
    if axis != 2:
        # Rows run along z here; flip so that +z (superior in LPS/RAS) is up, as
        # people expect to see coronal and sagittal slices.
        slices = slices[:, ::-1, :]
    return np.ascontiguousarray(slices)


def cut_image(image: sitk.Image, axis: int, size: int) -> np.ndarray:
    """Normalised float image -> float32 slices [n, size, size] along ``axis``,
    Gaussian-smoothed first where the grid gets coarser (against aliasing)."""
    out_n, out_sp, origin = axis_grid(image, axis, size)
    sp = np.array(image.GetSpacing())
    sigma = 0.5 * np.sqrt(np.maximum(np.array(out_sp) ** 2 - sp ** 2, 0.0))
    if sigma.max() > 0.2 * sp.min():
        image = sitk.DiscreteGaussian(image, (sigma ** 2).tolist(), 64, 0.01, True)
    res = sitk.Resample(image, out_n, sitk.Transform(), sitk.sitkLinear, origin, out_sp,
                        image.GetDirection(), 0.0, sitk.sitkFloat32)
    return _to_slices(sitk.GetArrayFromImage(res), axis)


def cut_labels(labels: sitk.Image, image: sitk.Image, axis: int, size: int) -> np.ndarray:
    """Label map on ``image``'s grid -> int32 slices [n, size, size] (nearest neighbour)."""
    out_n, out_sp, origin = axis_grid(image, axis, size)
    res = sitk.Resample(labels, out_n, sitk.Transform(), sitk.sitkNearestNeighbor, origin,
                        out_sp, image.GetDirection(), 0, sitk.sitkInt32)
    return _to_slices(sitk.GetArrayFromImage(res), axis)


def _tile_positions(length: int, size: int) -> List[int]:
    if length <= size:
        return [0]
    step = size // 2
    starts = list(range(0, length - size + 1, step))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def tile_2d(image: np.ndarray, labels: Dict[str, np.ndarray], size: int, factor: int
            ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """A 2D image [H, W] in [0, 1] and its label maps -> overlapping tiles [n, size, size]
    at downscale ``factor`` (box-averaged image, strided labels), padded where smaller."""
    if factor > 1:
        image = downscale_local_mean(image, (factor, factor)).astype(np.float32)
        labels = {p: lab[factor // 2::factor, factor // 2::factor] for p, lab in labels.items()}
    h, w = image.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(image, pad)
        labels = {p: np.pad(lab, pad) for p, lab in labels.items()}
        h, w = image.shape
    corners = [(r, c) for r in _tile_positions(h, size) for c in _tile_positions(w, size)]
    imgs = np.stack([image[r:r + size, c:c + size] for r, c in corners]).astype(np.float32)
    labs = {p: np.stack([lab[r:r + size, c:c + size] for r, c in corners]).astype(np.int32)
            for p, lab in labels.items()}
    return imgs, labs


def _present(slice_labels: np.ndarray, n_labels: int) -> np.ndarray:
    counts = np.bincount(slice_labels.ravel(), minlength=n_labels + 1)
    present = counts >= MIN_LABEL_PIXELS
    present[0] = False  # background is never a target
    return present


def build_arrays(dataset: RealDataset, size: int = 128, log: Log = lambda m: None
                 ) -> Dict[str, np.ndarray]:
    """Slice bank of one dataset as a dict of arrays (what :func:`save_arrays` writes).

    Keys: images float16 [N, size, size]; volume int16 [N]; axis int8 [N] (SimpleITK
    axis, or tile scale index for 2D); position int32 [N]; volume_names, protocols
    (str arrays); shared_grid, size, format (scalars); and per protocol j:
    labels_j int16 [R_j, size, size] (ids 1..K_j, 0 = background), rows_j int32 [N]
    (row of labels_j for each image, -1 where the volume lacks the protocol),
    present_j bool [R_j, K_j + 1], values_j int64 [K_j] (original value of label k+1).
    """
    if size < 8:
        raise ValueError(f"slice size must be >= 8, got {size}")
    protocols = dataset.protocols
    luts, values = {}, {}
    for p in protocols:
        distinct = {id(v.labels[p]): v.labels[p] for v in dataset.volumes if p in v.labels}
        values[p] = unique_values(list(distinct.values()))
        luts[p] = relabel_lut(values[p])

    images: List[np.ndarray] = []
    meta: List[Tuple[int, int, int]] = []
    rows: Dict[str, List[int]] = {p: [] for p in protocols}
    label_rows: Dict[str, List[np.ndarray]] = {p: [] for p in protocols}
    present_rows: Dict[str, List[np.ndarray]] = {p: [] for p in protocols}
    row_of: Dict[Tuple[int, int, int], int] = {}
    cut_cache: Dict[Tuple[int, int], np.ndarray] = {}

    for v, vol in enumerate(dataset.volumes):
        norm = normalise(vol.image)
        stacks: List[Tuple[int, np.ndarray, Dict[str, np.ndarray]]] = []
        if vol.image.GetDimension() == 2:
            img2d = sitk.GetArrayFromImage(norm)
            lab2d = {p: luts[p][sitk.GetArrayViewFromImage(lab)] for p, lab in vol.labels.items()}
            for a, factor in enumerate(TILE_SCALES):
                ims, labs = tile_2d(img2d, lab2d, size, factor)
                stacks.append((a, ims, labs))
        else:
            for axis in slice_axes(vol.image):
                labs = {}
                for p, lab in vol.labels.items():
                    key = (id(lab), axis)
                    if key not in cut_cache:
                        cut_cache[key] = luts[p][cut_labels(lab, vol.image, axis, size)]
                    labs[p] = cut_cache[key]
                stacks.append((axis, cut_image(norm, axis, size), labs))
        kept = 0
        for axis, ims, labs in stacks:
            for q in range(ims.shape[0]):
                pres = {p: _present(labs[p][q], len(values[p])) for p in labs}
                if (ims[q] > 0.05).mean() < MIN_CONTENT or not any(x.any() for x in pres.values()):
                    continue
                images.append(ims[q].astype(np.float16))
                meta.append((v, axis, q))
                kept += 1
                for p in protocols:
                    if p not in vol.labels:
                        rows[p].append(-1)
                        continue
                    key = (id(vol.labels[p]), axis, q)
                    if key not in row_of:
                        row_of[key] = len(label_rows[p])
                        label_rows[p].append(labs[p][q].astype(np.int16))
                        present_rows[p].append(pres[p])
                    rows[p].append(row_of[key])
        log(f"  {dataset.name}/{vol.name}: kept {kept} slices")
    if not images:
        raise ValueError(f"dataset {dataset.name!r} produced no usable slices")

    arrays: Dict[str, np.ndarray] = {
        "images": np.stack(images),
        "volume": np.array([m[0] for m in meta], dtype=np.int16),
        "axis": np.array([m[1] for m in meta], dtype=np.int8),
        "position": np.array([m[2] for m in meta], dtype=np.int32),
        "volume_names": np.array([v.name for v in dataset.volumes]),
        "protocols": np.array(protocols),
        "shared_grid": np.array(dataset.shared_grid),
        "size": np.array(size),
        "format": np.array(BANK_FORMAT),
    }
    for j, p in enumerate(protocols):
        k = len(values[p])
        arrays[f"labels_{j}"] = (np.stack(label_rows[p]) if label_rows[p]
                                 else np.zeros((0, size, size), np.int16))
        arrays[f"rows_{j}"] = np.array(rows[p], dtype=np.int32)
        arrays[f"present_{j}"] = (np.stack(present_rows[p]) if present_rows[p]
                                  else np.zeros((0, k + 1), bool))
        arrays[f"values_{j}"] = values[p]
    return arrays
