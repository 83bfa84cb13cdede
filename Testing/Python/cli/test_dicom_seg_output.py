"""`pancakes segment --format dicom-seg`: DICOM SEG per subject and protocol, checked with highdicom and dciodvfy."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from cli_runs import K, M, checksums, markers, no_partial_files, run
from dicom_ct import write_ct_series
from study_files import write_volume

hd = pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory, random_model_path):
    """Two CT series and one NIfTI file segmented with --format dicom-seg (module-wide: one model run)."""
    root = tmp_path_factory.mktemp("dicomseg")
    study = root / "study"
    write_ct_series(study / "ct_a", seed=1)
    write_ct_series(study / "ct_b", seed=2, shape=(9, 32, 40), origin=(5.0, 0.0, -40.0))
    write_volume(study / "plain.nii.gz", shape=(6, 16, 16))
    out = root / "out"
    capsys = _Capture()
    rc, _, err = capsys.run("segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K,
                            "--format", "dicom-seg", "--device", "cpu", "-q")
    return study, out, rc, err


class _Capture:
    """Runs the CLI in-process for a module fixture (pytest's capsys is function-scoped)."""

    def run(self, *args):
        import contextlib
        import io

        from pancakes.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main([str(a) for a in args])
        return rc, "", err.getvalue()


def _segs(out):
    return {d.name: sorted(d.glob("*.seg.dcm")) for d in sorted(out.iterdir()) if d.is_dir()}


def test_non_dicom_input_fails_in_one_line_and_the_batch_carries_on(seg_run):
    _, out, rc, err = seg_run
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "plain.nii.gz" in ln]
    assert len(lines) == 1 and "dicom-seg needs a DICOM series" in lines[0]
    assert "plain.nii.gz" in (out / "failures.csv").read_text(encoding="utf-8")
    assert sorted(_segs(out)) == ["ct_a", "ct_b"] and no_partial_files(out)


def test_seg_matches_labels_and_references_its_source(seg_run):
    study, out, _, _ = seg_run
    found = markers(out)
    labels_seen = {m: set() for m in range(M)}
    for name, files in _segs(out).items():
        assert [f.name for f in files] == [f"{name}_P{m + 1:02d}.seg.dcm" for m in range(M)]
        sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((study / name).iterdir())]
        marker = found[str(study / name)][1]
        for m, path in enumerate(files):
            seg = hd.seg.segread(path)
            assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
            assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
            assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
            assert seg.PatientID == sources[0].PatientID
            refs = seg.ReferencedSeriesSequence[0]
            assert refs.SeriesInstanceUID == sources[0].SeriesInstanceUID
            assert {r.ReferencedSOPInstanceUID for r in refs.ReferencedInstanceSequence} == \
                {s.SOPInstanceUID for s in sources}
            descs = seg.SegmentSequence
            assert [d.SegmentNumber for d in descs] == list(range(1, K + 1))
            labels_seen[m].add(tuple((d.SegmentLabel, tuple(d.RecommendedDisplayCIELabValue)) for d in descs))
            algo = descs[0].SegmentationAlgorithmIdentificationSequence[0]
            assert algo.AlgorithmName == "Pancakes" and marker["model_sha256"][:12] in algo.AlgorithmVersion
            assert marker["model_sha256"] in algo.AlgorithmParameters
            # Voxels per segment, read back on the source grid, are the counts the batch measured.
            volume = seg.get_volume(combine_segments=True, relabel=False)
            counts = np.bincount(volume.array.ravel(), minlength=K + 1)[1:]
            assert list(counts) == marker["counts"][m]
            assert volume.array.shape == (len(sources), sources[0].Rows, sources[0].Columns)
    # Segment numbers, labels and colours of a protocol are identical across subjects.
    assert all(len(seen) == 1 for seen in labels_seen.values())


def test_segs_pass_dciodvfy(seg_run):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (apt-get install -y dicom3tools; .ci/run does it)")
    _, out, _, _ = seg_run
    for files in _segs(out).values():
        for path in files:
            proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
            report = proc.stdout + proc.stderr
            errors = [ln for ln in report.splitlines() if ln.startswith("Error")]
            assert not errors, f"{path.name}:\n" + "\n".join(errors)


def test_resume_keeps_finished_segs(seg_run, capsys, random_model_path):
    study, out, _, _ = seg_run
    before = {p: s for p, s in checksums(out).items() if p.endswith(".seg.dcm")}
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K,
                     "--format", "dicom-seg", "--device", "cpu", "-q", "--resume")
    assert rc == 1 and "2 already complete" in err
    assert {p: s for p, s in checksums(out).items() if p.endswith(".seg.dcm")} == before
