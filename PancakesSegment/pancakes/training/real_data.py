"""Real labelled data for training and development: splits, slice banks, dev sets.

Usage::

    from pancakes.training.real_data import load_bank, dev_sets
    bank = load_bank("train")                  # builds <cache>/slices/*.npz on first use
    ts = bank.sample_set(np.random.default_rng(0), S=3)
    sets = dev_sets(S=3, n_sets=40, seed=0)    # deterministic, DEV split only

Build every bank ahead of time (a minute or two) with
``python -m pancakes.training.real_data --build``.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .fetch_data import DataUnavailableError, resolve_cache_dir
from .real_bank import DatasetBank, SliceBank, TaskSet
from .bank_file import load_arrays, save_arrays

__all__ = ["TRAIN_DATASETS", "DEV_DATASETS", "SPLITS", "DataUnavailableError", "SliceBank",
           "TaskSet", "load_bank", "dev_sets", "dev_bank", "draw_sets", "bank_path", "build_bank",
           "DEV_PARTS", "part_of"]

TRAIN_DATASETS = ("mni_atlases", "totalseg_ct", "pyradiomics_mr_lesions", "napari_nuclei_3d")

# Never trained on. Chosen to span modalities and kinds of held-out-ness:
# - totalseg_mr: the only MR abdomen (23 TotalSegmentator MR labels) - unseen modality
#   and anatomy-in-modality.
# - stardist_nuclei_2d: 2D fluorescence nuclei (binary and instances) - a microscopy
#   image never seen (napari's 3D nuclei stay in training).
# - mni_neuromorphometrics: one atlas protocol held out entirely; its templates are
#   seen in training with other protocols, so this measures a new protocol only.
# - pyradiomics_lung_ct: the held-out CT. TotalSegmentator's example_ct_sm is not
#   another patient: it equals slices 82-111 of example_ct (correlation 1.0 at that
#   offset, checked by same_patient_ct()), so holding it out would leak; the two
#   pyradiomics lung CTs (one lesion each) are independent CT patients instead.
DEV_DATASETS = ("totalseg_mr", "stardist_nuclei_2d", "mni_neuromorphometrics",
                "pyradiomics_lung_ct")

SPLITS = {"train": TRAIN_DATASETS, "dev": DEV_DATASETS}

# The dev split is halved so that reported figures come from images that model selection
# (periodic evaluation, checkpoint choice) never saw: "select" for choosing, "test" for the
# model card. Slices alternate in blocks of DEV_BLOCK positions along each axis; a block
# rather than single slices, so that a test set's neighbours are not all selection slices.
# The block parity ignores the volume, so a cross-volume set (same position in several
# templates) stays in one part.
DEV_PARTS = ("select", "test")
DEV_BLOCK = 4


def slices_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    return resolve_cache_dir(cache_dir) / "slices"


def bank_path(name: str, cache_dir: Optional[os.PathLike] = None, size: int = 128) -> Path:
    """Where the slice bank of dataset ``name`` at ``size`` lives."""
    return slices_dir(cache_dir) / f"{name}_{size}.npz"


def build_bank(name: str, cache_dir: Optional[os.PathLike] = None, size: int = 128,
               log=print) -> Path:
    """Build (or rebuild) the slice bank of one dataset from the fetched sources."""
    from .real_slicing import build_arrays  # needs SimpleITK: only when building
    from .real_sources import BUILDERS

    if name not in BUILDERS:
        raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(BUILDERS)}")
    root = resolve_cache_dir(cache_dir)
    log(f"[real_data] building slice bank {name} (size {size}) from {root} ...")
    try:
        dataset = BUILDERS[name](root)
    except FileNotFoundError as exc:
        raise DataUnavailableError(str(exc)) from None
    arrays = build_arrays(dataset, size, log)
    path = bank_path(name, root, size)
    save_arrays(arrays, path)
    log(f"[real_data] {name}: {arrays['images'].shape[0]} slices -> {path}")
    return path


def _load_dataset(name: str, cache_dir: Optional[os.PathLike], size: int,
                  build: bool) -> Dict[str, np.ndarray]:
    path = bank_path(name, cache_dir, size)
    if path.exists():
        try:
            return load_arrays(path, size)
        except (ValueError, OSError):
            pass  # stale format or damaged file: rebuild below
    if not build:
        raise DataUnavailableError(f"slice bank {path} is missing")
    build_bank(name, cache_dir, size)
    return load_arrays(path, size)


def load_bank(split: str = "train", cache_dir: Optional[os.PathLike] = None,
              size: int = 128, build: bool = True) -> SliceBank:
    """Slice bank of a split ("train" or "dev").

    Loads ``<cache>/slices/<dataset>_<size>.npz``; missing banks are built from the
    fetched sources first (unless ``build=False``). Raises DataUnavailableError with
    what to run when neither bank nor sources are there.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    try:
        return SliceBank([DatasetBank(name, _load_dataset(name, cache_dir, size, build))
                          for name in SPLITS[split]])
    finally:
        _release_sources()


def _release_sources() -> None:
    """Drop the resampled MNI volumes kept for building (hundreds of MB)."""
    if "pancakes.training.real_sources" in sys.modules:
        sys.modules["pancakes.training.real_sources"]._mni.cache_clear()


def draw_sets(bank: SliceBank, S: int, n_sets: int, seed: int = 0) -> List[TaskSet]:
    """n_sets sets drawn round-robin over the bank's datasets (equal shares),
    deterministic for a seed; datasets that cannot give S slices are left out."""
    if n_sets < 0:
        raise ValueError(f"n_sets must be >= 0, got {n_sets}")
    names = [n for n in bank.datasets if bank.dataset(n).viable(int(S))]
    if not names and n_sets:
        raise ValueError(f"no dataset in the bank can give sets of S={S} slices")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_sets):
        ts = bank.sample_set(rng, S, dataset=names[i % len(names)])
        if ts is not None:
            out.append(ts)
    return out


def dev_part_mask(axis: np.ndarray, position: np.ndarray, part: str) -> np.ndarray:
    """bool [N]: which bank slices belong to dev part ``part`` ("select" or "test")."""
    if part not in DEV_PARTS:
        raise ValueError(f"dev part must be one of {DEV_PARTS}, got {part!r}")
    parity = (np.asarray(position) // DEV_BLOCK + np.asarray(axis)) % 2
    return parity == DEV_PARTS.index(part)


def part_of(bank: DatasetBank, part: str) -> DatasetBank:
    """The slices of ``bank`` in dev part ``part``, as a bank of their own (label maps shared)."""
    keep = dev_part_mask(bank.axis, bank.position, part)
    arrays = {"images": bank.images[keep], "volume": bank.volume[keep], "axis": bank.axis[keep],
              "position": bank.position[keep], "volume_names": np.asarray(bank.volume_names),
              "protocols": np.asarray(bank.protocols), "shared_grid": np.asarray(bank.shared_grid)}
    for j in range(len(bank.protocols)):
        arrays[f"labels_{j}"] = bank.labels[j]
        arrays[f"rows_{j}"] = bank.rows[j][keep]
        arrays[f"present_{j}"] = bank.present_rows[j]
    return DatasetBank(bank.name, arrays)


@functools.lru_cache(maxsize=4)
def _dev_bank(cache_dir: Optional[str], size: int, part: Optional[str] = None) -> SliceBank:
    bank = load_bank("dev", cache_dir, size)
    if part is None:
        return bank
    return SliceBank([part_of(bank.dataset(n), part) for n in bank.datasets])


def dev_bank(part: Optional[str] = None, cache_dir: Optional[os.PathLike] = None, size: int = 128) -> SliceBank:
    """The DEV split's bank (cached per process); ``part`` keeps only "select" or "test" slices.
    ``size``: the slices' side (128, the model's input; larger banks are built on first use)."""
    return _dev_bank(str(resolve_cache_dir(cache_dir)), int(size), part)


def dev_sets(S: int, n_sets: int, seed: int = 0,
             cache_dir: Optional[os.PathLike] = None, part: Optional[str] = None, size: int = 128) -> List[TaskSet]:
    """Deterministic development sets from the DEV split only, every dev dataset
    getting an equal share (round-robin); ``part`` draws from one half of it only. ``size``: as dev_bank;
    banks of other sizes hold other slices (the 2D nuclei, for one, are cut into fewer tiles), so their sets differ."""
    return draw_sets(dev_bank(part, cache_dir, size), S, n_sets, seed)


def same_patient_ct(cache_dir: Optional[os.PathLike] = None, min_corr: float = 0.99) -> bool:
    """True when TotalSegmentator's example_ct_sm is a slab of example_ct (same
    patient): some z-offset of example_ct matches it voxel for voxel."""
    import SimpleITK as sitk

    from .fetch_data import source_dir

    ts = source_dir("totalsegmentator", cache_dir) / "tests" / "reference_files"
    sm = sitk.GetArrayFromImage(sitk.ReadImage(str(ts / "example_ct_sm.nii.gz"))).astype(float)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(ts / "example_ct.nii.gz"))).astype(float)
    if sm.shape[1:] != ct.shape[1:]:
        # Different in-plane grids: bring example_ct onto example_ct_sm's grid.
        ref = sitk.ReadImage(str(ts / "example_ct_sm.nii.gz"))
        big = sitk.ReadImage(str(ts / "example_ct.nii.gz"), sitk.sitkFloat32)
        ct = sitk.GetArrayFromImage(sitk.Resample(big, ref, sitk.Transform(), sitk.sitkLinear))
    n = sm.shape[0]
    best = max(np.corrcoef(sm.ravel(), ct[o:o + n].ravel())[0, 1]
               for o in range(ct.shape[0] - n + 1))
    return bool(best >= min_corr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pancakes.training.real_data",
                                     description="Build and summarise the real-data slice banks.")
    parser.add_argument("--cache", default=None,
                        help="data cache (default: as pancakes-fetch-data)")
    parser.add_argument("--split", choices=sorted(SPLITS), nargs="+", default=sorted(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--build", action="store_true", help="rebuild banks even if cached")
    args = parser.parse_args(argv)
    try:
        for split in args.split:
            if args.build:
                for name in SPLITS[split]:
                    build_bank(name, args.cache, args.size)
            bank = load_bank(split, args.cache, args.size)
            for name in bank.datasets:
                b = bank.dataset(name)
                print(f"{split:5s} {name:24s} {b.images.shape[0]:5d} slices, "
                      f"{len(b.volume_names)} volumes, protocols: {', '.join(b.protocols)}")
    except DataUnavailableError as exc:
        print(f"real_data: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
