"""Writing label volumes: .seg.nrrd via slicerio, NIfTI + colour table, atomic writes, volumes.csv."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from pancakes import protocols
from pancakes.label_volumes import label_counts, read_volumes_csv, volume_rows, voxel_volume_mm3, write_volumes_csv
from pancakes.segio import (atomic_write, ijk_to_lps, read_colour_table, read_segment_names, write_colour_table,
                            write_nifti_labelmap, write_seg_nrrd)

M, K = 3, 6
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a 90-degree in-plane rotation


def labels_volume(seed=0):
    """uint8 labels 1..K-1 on a 20x32x28 (k, j, i) grid; label K stays empty on purpose."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(1, K, (20, 32, 28)).astype(np.uint8)
    arr[:, :5, :] = 2  # a block so extents are not always the full volume
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.75, 2.0))
    img.SetOrigin((12.0, -30.0, 5.5))
    img.SetDirection(DIRECTION)
    return img, arr


def test_seg_nrrd_round_trip_through_slicerio(tmp_path):
    img, arr = labels_volume()
    path = write_seg_nrrd(tmp_path / "a_P02.seg.nrrd", img, M, K, 1)
    seg = slicerio.read_segmentation(str(path))
    # slicerio's voxels are (i, j, k); SimpleITK's arrays are (k, j, i).
    assert np.array_equal(seg["voxels"], arr.transpose(2, 1, 0))
    expected = np.array([[0, 0.75, 0, 12.0], [-0.5, 0, 0, -30.0], [0, 0, 2.0, 5.5], [0, 0, 0, 1]])
    assert np.allclose(seg["ijkToLPS"], expected)
    assert [s["id"] for s in seg["segments"]] == [protocols.segment_id(M, K, 1, k) for k in range(K)]
    assert [s["labelValue"] for s in seg["segments"]] == [protocols.label_value(M, K, 1, k) for k in range(K)]
    for k, s in enumerate(seg["segments"]):
        assert np.allclose(s["color"], protocols.colour_float(M, K, 1, k), atol=1e-6)
        assert s["layer"] == 0
    assert read_segment_names(path) == [protocols.segment_name(M, K, 1, k) for k in range(K)]
    # Extents are (i, j, k) bounding boxes; the never-used label K is listed with an empty extent.
    ijk = arr.transpose(2, 1, 0)
    for k, s in enumerate(seg["segments"]):
        idx = np.nonzero(ijk == k + 1)
        want = [0, -1, 0, -1, 0, -1] if not idx[0].size else [int(v) for a in idx for v in (a.min(), a.max())]
        assert s["extent"] == want
    # SimpleITK reads the same geometry back.
    back = sitk.ReadImage(str(path))
    assert np.allclose(back.GetDirection(), DIRECTION) and np.allclose(back.GetOrigin(), img.GetOrigin())
    assert np.allclose(back.GetSpacing(), img.GetSpacing())
    assert np.allclose(ijk_to_lps(back), expected)


def test_label_values_follow_protocols_module(tmp_path, monkeypatch):
    """If label values ever stop being k + 1, the files follow pancakes.protocols, not the engine."""
    monkeypatch.setattr(protocols, "label_value", lambda M_, K_, m, k: 2 * k + 3)
    img, arr = labels_volume()
    seg = slicerio.read_segmentation(str(write_seg_nrrd(tmp_path / "x.seg.nrrd", img, M, K, 0)))
    assert np.array_equal(seg["voxels"], (2 * (arr.astype(int) - 1) + 3).transpose(2, 1, 0))
    assert [s["labelValue"] for s in seg["segments"]] == [2 * k + 3 for k in range(K)]
    nii = sitk.ReadImage(str(write_nifti_labelmap(tmp_path / "x.nii.gz", img, M, K, 0)))
    assert np.array_equal(sitk.GetArrayFromImage(nii), 2 * (arr.astype(int) - 1) + 3)


def test_nifti_labelmap_and_colour_table(tmp_path):
    img, arr = labels_volume(1)
    back = sitk.ReadImage(str(write_nifti_labelmap(tmp_path / "b_P01.nii.gz", img, M, K, 0)))
    assert np.array_equal(sitk.GetArrayFromImage(back), arr)
    assert np.allclose(back.GetDirection(), DIRECTION, atol=1e-6)
    assert np.allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    assert np.allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-6)
    table = read_colour_table(write_colour_table(tmp_path / "pancakes_M3_K6_colors.txt", M, K))
    assert table[0] == ("Background", (0, 0, 0, 0))
    assert sorted(table) == list(range(K + 1))
    for k in range(K):
        for m in range(M):
            assert table[protocols.label_value(M, K, m, k)][1] == protocols.colour(M, K, m, k) + (255,)


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    final = tmp_path / "out.seg.nrrd"

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"NRRD0004\nhalf a header")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(final, crash)
    assert list(tmp_path.iterdir()) == []
    final.write_bytes(b"previous result")

    def disk_full(tmp):
        with open(tmp, "wb") as f:
            f.write(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(final, disk_full)
    assert final.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.seg.nrrd"]


def test_volume_rows_and_csv(tmp_path):
    img, arr = labels_volume(2)
    counts = [label_counts(img, K) for _ in range(M)]
    assert counts[0] == [int((arr == k + 1).sum()) for k in range(K)]
    rows = volume_rows("sub ject ü", counts, 0.75, M, K)
    assert len(rows) == M * K
    path = write_volumes_csv(tmp_path / "volumes.csv", rows)
    back = read_volumes_csv(path)
    assert [r["segment_id"] for r in back[:K]] == [protocols.segment_id(M, K, 0, k) for k in range(K)]
    assert {r["subject"] for r in back} == {"sub ject ü"}
    assert sum(r["voxel_count"] for r in back if r["protocol"] == 2) == arr.size
    assert all(r["volume_mm3"] == pytest.approx(r["voxel_count"] * 0.75) for r in back)
    assert back[K - 1]["voxel_count"] == 0  # empty labels keep their row


def test_voxel_volume_of_a_sheared_grid():
    """A sheared grid (NRRD/MHA of a gantry-tilted CT) has voxels of |det(direction)| x the spacing
    product; the plain product overstated every volume in volumes.csv (by 12% at this shear)."""
    img = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    img.SetSpacing((2.0, 1.0, 3.0))
    assert voxel_volume_mm3(img) == pytest.approx(6.0)
    img.SetDirection((0, -1, 0, 1, 0, 0, 0, 0, -1))  # a flip: orthonormal, the same voxel volume
    assert voxel_volume_mm3(img) == pytest.approx(6.0)
    c = 1 / np.sqrt(1.25)  # i axis along (1, 0.5, 0) normalised, j along y, k along z
    img.SetDirection((c, 0, 0, 0.5 * c, 1, 0, 0, 0, 1))
    edges = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    assert voxel_volume_mm3(img) == pytest.approx(abs(np.linalg.det(edges))) == pytest.approx(6.0 * c)
