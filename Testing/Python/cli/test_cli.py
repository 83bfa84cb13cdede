"""`pancakes segment` / `pancakes info` end to end, in-process, with the random test model."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image
from study_files import write_dicom_series, write_volume

from pancakes import protocols
from pancakes.cli import main
from pancakes.render import HEADER, MARGIN, TILE
from pancakes.inputs import sample_data_dir
from pancakes.label_volumes import read_volumes_csv
from pancakes.segio import ijk_to_lps, read_colour_table, read_segment_names

M, K = 2, 3
SAMPLE = ["brain1", "brain2", "breast1", "lung1"]


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def checksums(folder):
    sums = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                sums[p] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return sums


def markers(out):
    """{source: (subject folder, marker)} of every complete subject in OUT."""
    found = {}
    for d in out.iterdir():
        if (d / ".complete.json").is_file():
            marker = json.loads((d / ".complete.json").read_text(encoding="utf-8"))
            found[marker["source"]] = (d, marker)
    return found


def no_partial_files(out):
    return not [f for _, _, files in os.walk(out) for f in files if ".partial" in f]


def check_volumes_csv(out, subjects):
    rows = read_volumes_csv(out / "volumes.csv")
    assert len(rows) == len(subjects) * M * K
    for name in subjects:
        img = sitk.ReadImage(str(next((out / name).glob(f"{name}_P01.*"))))
        voxel = float(np.prod(img.GetSpacing()))
        for m in range(1, M + 1):
            mine = [r for r in rows if r["subject"] == name and r["protocol"] == m]
            assert [r["label"] for r in mine] == list(range(1, K + 1))
            assert sum(r["voxel_count"] for r in mine) == int(np.prod(img.GetSize()))
            for r in mine:
                assert r["volume_mm3"] == pytest.approx(r["voxel_count"] * voxel)
    return rows


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


def stat_of(folder):
    return {p.name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in folder.iterdir()}


def test_resume_skips_complete_subjects_and_redoes_the_rest(tmp_path, capsys, random_model_path):
    study = tmp_path / "in"
    study.mkdir()
    write_volume(study / "a.nii.gz", seed=1)
    write_volume(study / "b.nii.gz", seed=2)
    out = tmp_path / "out"
    args = ["segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K]
    assert run(capsys, *args)[0] == 0
    a_before = stat_of(out / "a")
    (out / "b" / ".complete.json").unlink()  # b was interrupted before its marker
    (out / "b" / "b_P02.seg.nrrd").unlink()
    rc, _, err = run(capsys, *args, "--resume")
    assert rc == 0 and "1 segmented, 1 already complete" in err
    assert stat_of(out / "a") == a_before
    assert (out / "b" / "b_P02.seg.nrrd").is_file() and (out / "b" / ".complete.json").is_file()
    assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"a", "b"}
    # A replaced input (a corrected scan under the same name) is redone, not skipped.
    write_volume(study / "a.nii.gz", seed=3)
    rc, _, err = run(capsys, *args, "--resume")
    assert rc == 0 and "1 segmented, 1 already complete" in err
    assert stat_of(out / "a")["a_P01.seg.nrrd"] != a_before["a_P01.seg.nrrd"]
    a_before = stat_of(out / "a")
    # Another K does not match the markers: everything is redone.
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K + 1,
                     "--resume")
    assert rc == 0 and "2 segmented" in err
    assert stat_of(out / "a")["a_P01.seg.nrrd"] != a_before["a_P01.seg.nrrd"]
    # Decoding without adaptation gives other labels, so it does not match the markers either.
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K + 1,
                     "--resume", "--adapt", "0")
    assert rc == 0 and "2 segmented" in err


def test_outputs_inside_the_study_are_not_taken_as_inputs(tmp_path, capsys, random_model_path):
    """An earlier OUT inside the study, or OUT = INPUT, used to send label maps and gallery.png back in."""
    study = tmp_path / "in"
    study.mkdir()
    write_volume(study / "a.nii.gz", seed=1)
    args = [study, "--model", random_model_path, "-M", M, "-K", K, "--format", "nifti"]
    for out in (study / "v1", study / "v2", study, study):
        rc, _, err = run(capsys, "segment", *args, "-o", out)
        assert rc == 0 and "pancakes: 1 segmented;" in err, (out, err)
    (study / "v1" / "a" / ".complete.json").unlink()  # an interrupted subject folder is output too
    rc, _, err = run(capsys, "segment", *args, "-o", study / "v3")
    assert rc == 0 and "pancakes: 1 segmented;" in err, err
    assert set(markers(study / "v3")) == {str(study / "a.nii.gz")}


def test_subject_folders_do_not_take_over_folders_already_in_out(tmp_path, capsys, random_model_path):
    """With OUT = INPUT, sub01.nii.gz's outputs went into the input folder sub01/; the next run took that
    folder for output and dropped sub01/t2.nii.gz from the batch and from volumes.csv."""
    study = tmp_path / "in"
    (study / "sub01").mkdir(parents=True)
    write_volume(study / "sub01.nii.gz", seed=1)
    write_volume(study / "sub01" / "t2.nii.gz", seed=2)
    (study / "notes").mkdir()  # someone's folder in OUT: not a place for subject 'notes'
    (study / "notes" / "n.txt").write_text("mine")
    write_volume(study / "notes.nrrd", seed=3)
    args = ["segment", study, "-o", study, "--model", random_model_path, "-M", M, "-K", K]
    for resume in ([], ["--resume"], []):
        rc, _, err = run(capsys, *args, *resume)
        assert rc == 0 and "Traceback" not in err
        assert set(markers(study)) == {str(study / "sub01.nii.gz"), str(study / "sub01" / "t2.nii.gz"),
                                       str(study / "notes.nrrd")}, err
        assert sorted(os.listdir(study / "sub01")) == ["t2.nii.gz"]
        assert os.listdir(study / "notes") == ["n.txt"]
        assert {r["subject"] for r in read_volumes_csv(study / "volumes.csv")} == {"sub01_2", "sub01_t2", "notes_2"}


def test_rerun_with_fewer_protocols_leaves_no_stale_protocol_files(tmp_path, capsys, random_model_path):
    """A rerun with M=2 over an M=3 run rewrote P01-P02 and left P03 of the old run beside them,
    as if the subject had three protocols of the new run."""
    vol = tmp_path / "a.nii.gz"
    write_volume(vol, seed=1)
    out = tmp_path / "out"
    base = ["segment", vol, "-o", out, "--model", random_model_path, "-K", K]
    assert run(capsys, *base, "-M", 3, "--format", "nifti")[0] == 0
    assert run(capsys, *base, "-M", 3)[0] == 0
    assert run(capsys, *base, "-M", 2)[0] == 0
    # The other format's files are another complete run, kept; this format has M=2 files only.
    assert sorted(p.name for p in (out / "a").glob("a_P*")) == [
        "a_P01.nii.gz", "a_P01.seg.nrrd", "a_P02.nii.gz", "a_P02.seg.nrrd", "a_P03.nii.gz"]


def test_interrupted_write_leaves_no_partial_final_file(tmp_path, capsys, random_model_path, monkeypatch):
    study = tmp_path / "in"
    study.mkdir()
    write_volume(study / "a.nii.gz", seed=1)
    write_volume(study / "b.nii.gz", seed=2)
    out = tmp_path / "out"
    args = ["segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K]
    real = slicerio.write_segmentation
    calls = []

    def crash_midway(file, segmentation, *a, interrupt=KeyboardInterrupt, **kw):
        calls.append(file)
        if len(calls) == 2:  # a's second protocol: half a file, then the interruption
            with open(file, "wb") as f:
                f.write(b"NRRD0004\ntype: uint8\n")
            raise interrupt
        return real(file, segmentation, *a, **kw)

    monkeypatch.setattr(slicerio, "write_segmentation", crash_midway)
    rc, _, err = run(capsys, *args)
    assert rc == 130 and "interrupted" in err
    assert (out / "a" / "a_P01.seg.nrrd").is_file()
    assert not (out / "a" / "a_P02.seg.nrrd").exists() and not (out / "a" / ".complete.json").exists()
    assert no_partial_files(out)
    # A write error (disk full) fails that subject only.
    calls.clear()
    monkeypatch.setattr(slicerio, "write_segmentation",
                        lambda f, s, *a, **kw: crash_midway(f, s, *a, interrupt=OSError(28, "No space left"), **kw))
    rc, _, err = run(capsys, *args)
    assert rc == 1 and f"pancakes: {study / 'a.nii.gz'}: OSError" in err
    assert set(markers(out)) == {str(study / "b.nii.gz")} and no_partial_files(out)
    monkeypatch.setattr(slicerio, "write_segmentation", real)
    rc, _, err = run(capsys, *args, "--resume")
    assert rc == 0 and "1 segmented, 1 already complete" in err
    assert len(markers(out)) == 2


def test_file_names_that_are_not_utf8_fail_alone(tmp_path, capsys, random_model_path):
    """Names from a Latin-1 zip (b'M\xfcller.nii.gz') stopped the whole batch with a UnicodeEncodeError
    traceback; ITK itself aborts the process (SIGABRT) when handed such a path."""
    study = tmp_path / "in"
    (study / "ok").mkdir(parents=True)
    write_volume(study / "ok" / "good.nii.gz", seed=1)
    write_volume(study / "x.nii.gz", seed=2)
    write_volume(study / "ok" / "y.nii.gz", seed=3)
    raw = os.fsencode(study)
    os.rename(raw + b"/x.nii.gz", raw + b"/M\xfcller.nii.gz")
    os.rename(raw + b"/ok", raw + b"/Gr\xf6\xdfe")  # a folder: nothing inside can be opened by ITK
    bad_file, bad_dir = os.fsdecode(raw + b"/M\xfcller.nii.gz"), os.fsdecode(raw + b"/Gr\xf6\xdfe")
    write_volume(study / "fine.nrrd", seed=4)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K)
    assert rc == 1 and "Traceback" not in err
    assert set(markers(out)) == {str(study / "fine.nrrd")}
    lines = [ln for ln in err.splitlines() if "UTF-8" in ln]
    assert len(lines) == 2 and all(ln.startswith("pancakes: ") for ln in lines)
    failures = (out / "failures.csv").read_text(encoding="utf-8").splitlines()
    assert len(failures) == 3 and all("rename" in f for f in failures[1:])
    assert os.path.isfile(bad_file) and os.path.isdir(bad_dir)


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


def test_a_second_input_of_the_same_name_does_not_overwrite_the_first(tmp_path, capsys, random_model_path):
    """a/scan.nii.gz, then b/scan.nii.gz into one OUT: the second run replaced the first's results without a word."""
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        write_volume(tmp_path / folder / "scan.nii.gz", seed=seed)
    out = tmp_path / "out"
    common = ["-o", out, "--model", random_model_path, "-M", M, "-K", K]
    rc, _, _ = run(capsys, "segment", tmp_path / "a" / "scan.nii.gz", *common)
    assert rc == 0
    before = checksums(out / "scan")
    rc, _, err = run(capsys, "segment", tmp_path / "b" / "scan.nii.gz", *common)
    assert rc == 0 and f"holds the results of another input ({tmp_path / 'a' / 'scan.nii.gz'}); writing to scan_2" in err
    assert checksums(out / "scan") == before
    found = markers(out)
    assert found[str(tmp_path / "a" / "scan.nii.gz")][0].name == "scan"
    assert found[str(tmp_path / "b" / "scan.nii.gz")][0].name == "scan_2"
    # A rerun of b goes back to its own folder (and --resume skips it there).
    rc, _, err = run(capsys, "segment", tmp_path / "b" / "scan.nii.gz", *common, "--resume")
    assert rc == 0 and "1 already complete" in err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["scan", "scan_2"]


def test_resume_finds_subjects_renumbered_by_a_new_file_of_their_name(tmp_path, capsys, random_model_path):
    """Adding a.mha beside a.nii and a.nii.gz renumbers a, a_2, a_3; --resume then redid all three."""
    study = tmp_path / "in"
    study.mkdir()
    write_volume(study / "a.nii", seed=1)
    write_volume(study / "a.nii.gz", seed=2)
    out = tmp_path / "out"
    args = ["segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K, "--resume"]
    rc, _, err = run(capsys, *args)
    assert rc == 0 and "2 segmented" in err
    first = {src: d.name for src, (d, _) in markers(out).items()}
    write_volume(study / "a.mha", seed=3)
    rc, _, err = run(capsys, *args)
    assert rc == 0 and "1 segmented, 2 already complete" in err, err
    again = {src: d.name for src, (d, _) in markers(out).items()}
    assert all(again[src] == name for src, name in first.items())
    assert len(set(again.values())) == 3
