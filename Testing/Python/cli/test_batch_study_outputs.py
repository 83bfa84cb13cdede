"""volumes.csv, the gallery pages and failures.csv cover the whole OUT folder, not only the last run."""
from __future__ import annotations

import csv

from PIL import Image
from cli_runs import run
from study_files import write_volume

from pancakes.render import MARGIN, TILE
from pancakes.label_volumes import read_volumes_csv

M, K = 2, 3


def subjects_in(out):
    return list(dict.fromkeys(r["subject"] for r in read_volumes_csv(out / "volumes.csv")))


def failures(out):
    with open(out / "failures.csv", encoding="utf-8", newline="") as f:
        return [row["input"] for row in csv.DictReader(f)]


def gallery_columns(out):
    with Image.open(out / "gallery.png") as im:
        return (im.width - MARGIN) // (TILE + 4)


def test_runs_that_add_subjects_keep_the_earlier_ones_in_the_tables(tmp_path, capsys, random_model_path):
    for seed, name in enumerate("abc"):
        write_volume(tmp_path / f"{name}.nii.gz", seed=seed)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x00" * 10)
    out = tmp_path / "out"
    common = ["-o", out, "--model", random_model_path, "-M", M, "-K", K, "-q"]
    assert run(capsys, "segment", tmp_path / "a.nii.gz", bad, *common)[0] == 1
    assert subjects_in(out) == ["a"] and failures(out) == [str(bad)]
    # A second run with another subject: earlier ones first, then this run's; the old failure stays listed.
    assert run(capsys, "segment", tmp_path / "c.nii.gz", tmp_path / "b.nii.gz", *common)[0] == 0
    assert subjects_in(out) == ["a", "c", "b"]
    assert gallery_columns(out) == 3
    assert failures(out) == [str(bad)]
    # Other settings (K) are another study: its tables hold only its own subjects and failures.
    rc, _, _ = run(capsys, "segment", tmp_path / "a.nii.gz", "-o", out, "--model", random_model_path,
                   "-M", M, "-K", K + 1, "-q")
    assert rc == 0 and subjects_in(out) == ["a"] and failures(out) == []
    # Back to K: --resume is refused, OUT/run.json records the K+1 run (one line naming the difference).
    rc, _, err = run(capsys, "segment", tmp_path / "b.nii.gz", *common, "--resume")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"K {K + 1} -> {K}" in err
    # A plain run: a's folder now holds the K+1 result, so it is not listed; b and c are.
    assert run(capsys, "segment", tmp_path / "b.nii.gz", *common)[0] == 0
    assert subjects_in(out) == ["c", "b"] and failures(out) == [str(bad)]
    # The failed input, fixed and run again, leaves failures.csv.
    write_volume(bad, seed=7)
    assert run(capsys, "segment", bad, *common)[0] == 0
    assert failures(out) == [] and subjects_in(out) == ["b", "c", "bad"]
