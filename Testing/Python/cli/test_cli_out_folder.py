"""The command line's OUT folder over several runs: --resume, reruns, interrupted writes, clashing names,
outputs inside the study."""
from __future__ import annotations

import os

import slicerio
from cli_runs import K, M, checksums, markers, no_partial_files, run
from study_files import write_volume

from pancakes.label_volumes import read_volumes_csv


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
    # Another K with --resume is refused (run.json records K): one line, OUT untouched.
    other_k = ["segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K + 1]
    before = checksums(out)
    rc, _, err = run(capsys, *other_k, "--resume")
    assert rc == 2 and f"K {K} -> {K + 1}" in err and len(err.strip().splitlines()) == 1
    assert checksums(out) == before
    # Without --resume it is a new run: the markers do not match, so everything is redone.
    rc, _, err = run(capsys, *other_k)
    assert rc == 0 and "2 segmented" in err
    assert stat_of(out / "a")["a_P01.seg.nrrd"] != a_before["a_P01.seg.nrrd"]
    # Decoding without adaptation gives other labels: resuming with it is refused too.
    rc, _, err = run(capsys, *other_k, "--resume", "--adapt", "0")
    assert rc == 2 and "adapt 1.0 -> 0.0" in err


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
