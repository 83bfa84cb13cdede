"""`pancakes segment` / `pancakes info` end to end, in-process, with the random test model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image
from cli_runs import SAMPLE, K, M, check_volumes_csv, checksums, markers, no_partial_files, run
from study_files import write_dicom_series, write_volume

from pancakes import protocols
from pancakes.inputs import sample_data_dir
from pancakes.render import HEADER, MARGIN, TILE
from pancakes.segio import ijk_to_lps, read_colour_table, read_segment_names


def test_sample_to_seg_nrrd(tmp_path, capsys, random_model_path, random_model):
    before = checksums(sample_data_dir())
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", "--sample", "-o", out, "--model", random_model_path, "-M", M, "-K", K,
                     "--device", "cpu")
    assert rc == 0, err
    assert checksums(sample_data_dir()) == before
    ids = [[protocols.segment_id(M, K, m, k) for k in range(K)] for m in range(M)]
    for name in SAMPLE:
        src = sitk.ReadImage(str(sample_data_dir() / f"{name}.nrrd"))
        for m in range(M):
            path = out / name / f"{name}_P{m + 1:02d}.seg.nrrd"
            seg = slicerio.read_segmentation(str(path))
            assert [s["id"] for s in seg["segments"]] == ids[m]
            assert [s["labelValue"] for s in seg["segments"]] == list(range(1, K + 1))
            assert [tuple(s["color"]) for s in seg["segments"]] == [
                pytest.approx(protocols.colour_float(M, K, m, k), abs=1e-6) for k in range(K)]
            assert read_segment_names(path) == [protocols.segment_name(M, K, m, k) for k in range(K)]
            assert np.allclose(seg["ijkToLPS"], ijk_to_lps(src))
            assert seg["voxels"].shape == src.GetSize()
    # brain1 has a flipped y axis: its voxels must be exactly what the engine gives, in slicerio's (i, j, k) order.
    src = sitk.ReadImage(str(sample_data_dir() / "brain1.nrrd"))
    for m, lab in enumerate(random_model.segment_volume(src, M, K)):
        seg = slicerio.read_segmentation(str(out / "brain1" / f"brain1_P{m + 1:02d}.seg.nrrd"))
        assert np.array_equal(seg["voxels"], sitk.GetArrayFromImage(lab).transpose(2, 1, 0))
    check_volumes_csv(out, SAMPLE)
    with Image.open(out / "gallery.png") as g:
        assert g.size == (MARGIN + len(SAMPLE) * (TILE + 4), HEADER + M * (TILE + 4))
    assert (out / "failures.csv").read_text(encoding="utf-8") == "input,reason\n"
    assert no_partial_files(out)


def test_sample_to_nifti_with_colour_table(tmp_path, capsys, random_model_path):
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", "--sample", "-o", out, "--model", random_model_path, "-M", M, "-K", K,
                     "--format", "nifti", "--device", "cpu")
    assert rc == 0, err
    table = read_colour_table(out / f"pancakes_M{M}_K{K}_colors.txt")
    assert table[0] == ("Background", (0, 0, 0, 0)) and sorted(table) == list(range(K + 1))
    assert all(table[k + 1][1][:3] == protocols.colour(M, K, 0, k) for k in range(K))
    rows = check_volumes_csv(out, SAMPLE)
    for name in SAMPLE:
        src = sitk.ReadImage(str(sample_data_dir() / f"{name}.nrrd"))
        lab = sitk.ReadImage(str(out / name / f"{name}_P02.nii.gz"))
        arr = sitk.GetArrayFromImage(lab)
        assert arr.shape == sitk.GetArrayViewFromImage(src).shape and arr.min() >= 1 and arr.max() <= K
        assert np.allclose(lab.GetDirection(), src.GetDirection(), atol=1e-6)
        assert np.allclose(lab.GetOrigin(), src.GetOrigin(), atol=1e-3)
        counts = [r["voxel_count"] for r in rows if r["subject"] == name and r["protocol"] == 2]
        assert counts == [int((arr == k + 1).sum()) for k in range(K)]


def make_bad_study(folder):
    """Good and bad inputs side by side -> {path: expected words in the reason} for the bad ones."""
    folder.mkdir()
    write_volume(folder / "good.nii.gz")
    write_volume(folder / "odd 'name' ü \"q\".nii.gz", seed=1)
    half_nan = np.random.default_rng(2).random((20, 32, 32)).astype(np.float32)
    half_nan[:10] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(half_nan), str(folder / "half_nan.nrrd"))
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (24, 30, 3), np.uint8)).save(folder / "photo.png")
    bad = {}
    (folder / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    bad["corrupt.nii.gz"] = "not a readable image"
    (folder / "empty.nrrd").write_bytes(b"")
    bad["empty.nrrd"] = "empty"
    (folder / "cut.nii.gz").write_bytes((folder / "good.nii.gz").read_bytes()[:-500])
    bad["cut.nii.gz"] = "truncated"
    rng = np.random.default_rng(5)
    frames = [sitk.GetImageFromArray(rng.integers(0, 99, (8, 8, 8)).astype(np.int16)) for _ in range(3)]
    four_d = sitk.JoinSeries(frames)
    assert four_d.GetDimension() == 4
    sitk.WriteImage(four_d, str(folder / "four_d.nii.gz"))
    bad["four_d.nii.gz"] = "4D image"
    sitk.WriteImage(sitk.Image([16, 16, 16], sitk.sitkVectorFloat32, 2), str(folder / "vector.nrrd"))
    bad["vector.nrrd"] = "vector-valued"
    sitk.WriteImage(sitk.Image([16, 16, 16], sitk.sitkInt16) + 7, str(folder / "constant.nii.gz"))
    bad["constant.nii.gz"] = "constant"
    Image.fromarray(np.arange(9, dtype=np.uint8).reshape(3, 3)).save(folder / "tiny.png")
    bad["tiny.png"] = "has a side under"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(4).random((3, 3, 3))), str(folder / "tiny3d.nrrd"))
    bad["tiny3d.nrrd"] = "too small"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8, 8), np.nan, np.float32)), str(folder / "nan.nrrd"))
    bad["nan.nrrd"] = "NaN"
    return {str(folder / k): v for k, v in bad.items()}


def test_bad_inputs_fail_alone_with_one_line_each(tmp_path, capsys, random_model_path):
    study = tmp_path / "in"
    bad = make_bad_study(study)
    missing = str(tmp_path / "missing.nii.gz")
    bad[missing] = "no such file"
    before = checksums(study)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", study, missing, "-o", out, "--model", random_model_path, "-M", M, "-K", K)
    assert rc == 1
    assert checksums(study) == before
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("pancakes: /")]
    assert len(lines) == len(bad)
    for path, words in bad.items():
        mine = [ln for ln in lines if ln.startswith(f"pancakes: {path}: ")]
        assert len(mine) == 1 and words in mine[0], (path, mine)
    failures = (out / "failures.csv").read_text(encoding="utf-8").splitlines()
    assert len(failures) == 1 + len(bad)
    done = markers(out)
    good = {str(study / n) for n in ("good.nii.gz", "odd 'name' ü \"q\".nii.gz", "half_nan.nrrd", "photo.png")}
    assert set(done) == good
    for source, (folder, marker) in done.items():
        assert all((folder / f).is_file() for f in marker["files"]) and len(marker["files"]) == M
    # The photo is written as a one-slice volume with the PNG's geometry.
    photo_dir, photo = done[str(study / "photo.png")]
    lab = sitk.ReadImage(str(photo_dir / photo["files"][0]))
    assert lab.GetSize() == (30, 24, 1) and lab.GetSpacing() == (1.0, 1.0, 1.0)
    check_volumes_csv(out, [d.name for d, _ in done.values()])


def test_usage_errors_exit_2(tmp_path, capsys, random_model_path):
    vol = tmp_path / "v.nii.gz"
    write_volume(vol)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", vol, "-o", out, "--model", tmp_path / "nope.pt")
    assert rc == 2 and err.strip().count("\n") == 0 and "model file not found" in err
    rc, _, err = run(capsys, "segment", vol, "-o", out, "--model", random_model_path, "--protocols", "0")
    assert rc == 2 and err.startswith("pancakes: protocols=0")
    rc, _, err = run(capsys, "segment", "-o", out, "--model", random_model_path)
    assert rc == 2 and "no INPUT" in err
    assert run(capsys, "segment", vol, "-o", out, "--format", "dicom")[0] == 2
    rc, _, err = run(capsys, "segment", vol, "-o", out, "--model", random_model_path, "--adapt", "-1")
    assert rc == 2 and err.strip() == "pancakes: --adapt -1.0: must be a finite number >= 0"
    assert run(capsys)[0] == 2
    (tmp_path / "file").write_text("x")
    assert run(capsys, "segment", vol, "-o", tmp_path / "file", "--model", random_model_path)[0] == 2
    under_a_file = tmp_path / "file" / "out"
    rc, _, err = run(capsys, "segment", vol, "-o", under_a_file, "--model", random_model_path)
    assert rc == 2 and err.strip() == f"pancakes: {under_a_file}: cannot write the output folder: Not a directory"
    assert not out.exists()


def test_dicom_series_folder(tmp_path, capsys, random_model_path):
    src = sitk.GetImageFromArray(np.random.default_rng(5).integers(0, 900, (6, 24, 20)).astype(np.int16))
    src.SetSpacing((0.7, 0.8, 3.0))
    src.SetOrigin((-20.0, 15.0, 40.0))
    write_dicom_series(tmp_path / "ser ies", src, "1.2.826.0.1.3680043.2.1125.31")
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", tmp_path / "ser ies", "-o", out, "--model", random_model_path,
                     "-M", M, "-K", K, "--format", "nifti", "--axis", "coronal")
    assert rc == 0, err
    lab = sitk.ReadImage(str(out / "ser ies" / "ser ies_P01.nii.gz"))
    assert lab.GetSize() == src.GetSize()
    assert np.allclose(lab.GetSpacing(), src.GetSpacing()) and np.allclose(lab.GetOrigin(), src.GetOrigin())


def test_info_prints_metadata(capsys, random_model_path):
    rc, out, _ = run(capsys, "info", "--model", random_model_path)
    assert rc == 0 and "input_size:" in out and "sha256:" in out and "note: \"test fixture\"" in out
    rc, out, _ = run(capsys, "info", "--model", random_model_path, "--json")
    assert rc == 0 and json.loads(out)["training"]["note"] == "test fixture"


def test_info_keeps_long_keys_apart_from_their_values(capsys):
    # The bundled model's metadata has keys longer than the usual column (exported_with_torch).
    rc, out, _ = run(capsys, "info")
    top = out.split("\ntraining:")[0].splitlines()
    assert rc == 0 and any(line.startswith("exported_with_torch:") for line in top), top
    assert all(": " in line for line in top), top
    # The values share one column.
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in top}) == 1, top


def test_info_shows_the_refiners_file_as_it_is(capsys, recwarn):
    refiner = Path(__file__).resolve().parents[3] / "model_weights" / "refine.pt"
    rc, out, err = run(capsys, "info", "--model", refiner)
    assert rc == 0 and "kind:" in out and "refine" in out.split("kind:")[1].splitlines()[0], out
    # Not loaded as a protocol model: none of that engine's warnings about adaptation or label queries.
    assert not [w for w in recwarn if "adaptation" in str(w.message) or "label queries" in str(w.message)]
    assert "adaptation" not in err
