"""A process that dies inside a subject (native crash, OOM kill) must not stall the batch for ever.

The crash is simulated in a real subprocess: the batch's segmentation step is patched so
that, for one subject, the process SIGKILLs itself, as the kernel's OOM killer would.
Nothing Python-level runs after that, which is exactly the case the in-progress record covers.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from study_files import write_volume

from pancakes.in_progress import CRASHED, IN_PROGRESS
from pancakes.label_volumes import read_volumes_csv

ROOT = Path(__file__).resolve().parents[3]
# Runs the CLI with segmentation of the subject named in argv[1] replaced by a SIGKILL of the process.
DRIVER = """
import os, signal, sys
import pancakes.batch as batch
victim = sys.argv[1]
real = batch.segment_loaded
def dying(model, loaded, opts, name, bar=None):
    if os.path.basename(name).startswith(victim):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(model, loaded, opts, name, bar)
batch.segment_loaded = dying
from pancakes.cli import main
sys.exit(main(sys.argv[2:]))
"""


def cli(*args, victim: str = "-none-"):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", DRIVER, victim, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def failures(out):
    with open(out / "failures.csv", encoding="utf-8", newline="") as f:
        return {row["input"]: row["reason"] for row in csv.DictReader(f)}


def test_a_subject_the_process_died_in_is_listed_and_skipped_then_retried_on_request(tmp_path, random_model_path):
    study = tmp_path / "in"
    study.mkdir()
    for seed, name in enumerate("abc"):
        write_volume(study / f"{name}.nii.gz", seed=seed)
    out = tmp_path / "out"
    args = ["segment", study, "-o", out, "--model", random_model_path, "-M", 2, "-K", 3, "-q"]
    died = cli(*args, victim="b")
    assert died.returncode == -9, died.stderr[-2000:]
    assert (out / "a" / ".complete.json").is_file() and (out / "b" / IN_PROGRESS).is_file()
    assert not (out / "volumes.csv").exists()
    # The next --resume lists b with the reason, carries on with c and writes the tables.
    for _ in range(2):  # and keeps doing so: the record stays until b is retried
        again = cli(*args, "--resume")
        assert again.returncode == 1, again.stderr[-2000:]
        assert f"pancakes: {study / 'b.nii.gz'}: {CRASHED}" in again.stderr
        assert failures(out) == {str(study / "b.nii.gz"): CRASHED}
        assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"a", "c"}
        assert not (out / "b" / ".complete.json").exists()
    # --retry-crashed segments it again; now it finishes, and nothing is left failed.
    retried = cli(*args, "--resume", "--retry-crashed")
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert "1 segmented, 2 already complete" in retried.stderr
    assert failures(out) == {}
    assert not (out / "b" / IN_PROGRESS).exists()
    assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"a", "b", "c"}


def test_a_python_level_failure_or_interrupt_leaves_no_crash_record(tmp_path, random_model_path):
    """Only a dead process leaves the record: a reported failure is an ordinary failure."""
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    proc = cli("segment", bad, "-o", out, "--model", random_model_path, "-M", 2, "-K", 3, "-q")
    assert proc.returncode == 1
    assert not (out / "bad" / IN_PROGRESS).exists()
    assert not (out / "bad").exists()  # nothing was written for it: no empty subject folder either
    reason = failures(out)[str(bad)]
    assert reason != CRASHED and "not a readable image" in reason
