"""``pancakes segment --scheduler`` on a real Dask cluster: one ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1 (dask_procs.py), shared by the tests of this module and stopped at its end.

The tests run in file order; the last one stops the scheduler on purpose.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runs import markers, no_partial_files, run
from dask_procs import DaskProcesses, env
from study_files import write_volume

from pancakes.in_progress import IN_PROGRESS
from pancakes.label_volumes import read_volumes_csv

pytest.importorskip("distributed")
M, K = 2, 3


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory, request):
    procs = DaskProcesses(tmp_path_factory.mktemp("dask"), workers=2, allowed_failures=1)
    request.addfinalizer(procs.stop)
    procs.wait_for_workers(2)
    return procs


def make_study(folder, names, shape=(12, 24, 28)):
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        write_volume(folder / f"{name}.nii.gz", shape=shape, seed=seed + 10)
    return folder


def labels(out):
    """{file name: label array} of every protocol file in OUT."""
    found = {}
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        for f in sorted(d.glob("*_P*.seg.nrrd")):
            found[f.name] = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
    return found


def failures(out):
    with open(out / "failures.csv", encoding="utf-8", newline="") as f:
        return {row["input"]: row["reason"] for row in csv.DictReader(f)}


def cli(*args, timeout=300):
    """The CLI in its own process (so that the test can kill a worker meanwhile)."""
    return subprocess.Popen([sys.executable, "-m", "pancakes.cli", *map(str, args)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_terminal_sigint)


def _terminal_sigint() -> None:
    """SIGINT as a terminal gives it. A test suite started in the background (``pytest &``,
    nohup) runs with SIGINT ignored, children inherit that, and the Ctrl-C test then saw
    the study run to its end (exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cluster_labels_equal_in_process_labels_and_resume_continues(dask_cluster, tmp_path, random_model_path,
                                                                    capsys, monkeypatch):
    from distributed import Client

    from pancakes.cluster_worker import model_loads

    study = make_study(tmp_path / "in", ["a", "b", "c", "d", "e"])
    common = [study, "--model", random_model_path, "-M", M, "-K", K, "-q"]
    rc, _, err = run(capsys, "segment", *common, "-o", tmp_path / "local")
    assert rc == 0, err
    monkeypatch.chdir(tmp_path)  # relative paths on the client: the workers, elsewhere, still find them
    rc, _, err = run(capsys, "segment", "in", "--model", random_model_path, "-M", M, "-K", K, "-q",
                     "-o", "cluster", "--scheduler", dask_cluster.scheduler_file)
    assert rc == 0, err
    assert "5 segmented" in err
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    mine, theirs = labels(cluster), labels(local)
    assert sorted(mine) == sorted(theirs) and len(mine) == 5 * M
    for name in mine:
        np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)
    assert read_volumes_csv(cluster / "volumes.csv") == read_volumes_csv(local / "volumes.csv")
    assert (cluster / "gallery.png").is_file() and failures(cluster) == {}
    assert no_partial_files(cluster) and not list(cluster.glob(".pancakes_cluster_probe_*"))
    assert not [d for d in cluster.iterdir() if (d / IN_PROGRESS).exists()]
    # Each worker loaded the model once for all its tasks.
    with Client(scheduler_file=str(dask_cluster.scheduler_file), timeout="30s") as client:
        loads = client.run(model_loads)
    assert len(loads) == 2 and all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1
    # --resume on the cluster: everything is complete, nothing is written again.
    before = {p: p.stat().st_mtime_ns for p in cluster.rglob("*.seg.nrrd")}
    rc, _, err = run(capsys, "segment", "in", "--model", random_model_path, "-M", M, "-K", K, "-q",
                     "-o", "cluster", "--scheduler", dask_cluster.scheduler_file, "--resume")
    assert rc == 0 and "0 segmented, 5 already complete" in err, err
    assert before == {p: p.stat().st_mtime_ns for p in cluster.rglob("*.seg.nrrd")}


def test_a_bad_input_among_good_ones_ends_in_failures_csv(dask_cluster, tmp_path, random_model_path, capsys):
    study = make_study(tmp_path / "in", ["good1", "good2"])
    bad = study / "bad.nii.gz"
    bad.write_bytes(b"not an image at all")
    address = json.loads(dask_cluster.scheduler_file.read_text())["address"]  # tcp://127.0.0.1:port
    out = tmp_path / "out"
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K, "-q",
                     "--scheduler", address)
    assert rc == 1, err
    assert list(failures(out)) == [str(bad)]
    assert f"pancakes: {bad}: " in err
    assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"good1", "good2"}
    assert no_partial_files(out)


def test_a_worker_that_does_not_see_out_is_refused(dask_cluster, tmp_path):
    from distributed import Client

    from pancakes.cluster import refuse_blind_workers
    from pancakes.errors import PancakesInputError

    with Client(scheduler_file=str(dask_cluster.scheduler_file), timeout="30s") as client:
        with pytest.raises(PancakesInputError, match="not visible on worker host .*shared filesystem"):
            refuse_blind_workers(client, tmp_path, "no-such-probe")


def _wait_for_record(path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@contextmanager
def cli_on_cluster(dask_cluster, study, out, model, slow=()):
    """``pancakes segment`` of ``study`` into ``out`` on ``dask_cluster``, in its own process, with the
    inputs named in ``slow`` made slow on the workers (4 s each: time to act mid-run). On exit the
    process is gone and the hooks are removed, whatever the test did."""
    hooks = [dask_cluster.hooks / f"slow_{name}.nii.gz" for name in slow]
    for hook in hooks:
        hook.write_text("")
    proc = cli("segment", study, "-o", out, "--model", model, "-M", M, "-K", K, "-q",
               "--scheduler", dask_cluster.scheduler_file)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for hook in hooks:
            hook.unlink(missing_ok=True)


def test_a_worker_killed_mid_task_loses_nothing(dask_cluster, tmp_path, random_model_path):
    study = make_study(tmp_path / "in", ["k1", "k2", "k3", "k4"])
    out = tmp_path / "out"
    with cli_on_cluster(dask_cluster, study, out, random_model_path, slow=["k2"]) as proc:
        record = _wait_for_record(out / "k2" / IN_PROGRESS)
        assert record["pid"] not in (os.getpid(), proc.pid)
        os.kill(record["pid"], 9)  # the worker segmenting k2, as the OOM killer would
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert sorted(markers(out)) == sorted(str(study / f"k{i}.nii.gz") for i in range(1, 5))
    rows = read_volumes_csv(out / "volumes.csv")
    assert len(rows) == 4 * M * K and {r["subject"] for r in rows} == {"k1", "k2", "k3", "k4"}
    assert sorted(p.name for p in (out / "k2").iterdir()) == [".complete.json", ".thumbnail.npz",
                                                            "k2_P01.seg.nrrd", "k2_P02.seg.nrrd"]
    assert no_partial_files(out) and failures(out) == {}
    dask_cluster.wait_for_workers(2)  # the nanny restarted the killed worker


def test_a_subject_that_keeps_killing_workers_ends_in_failures_csv(dask_cluster, tmp_path, random_model_path):
    study = make_study(tmp_path / "in", ["ok1", "deadly", "ok2"])
    (dask_cluster.hooks / "die_deadly.nii.gz").write_text("")
    out = tmp_path / "out"
    try:
        proc = cli("segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K, "-q",
                   "--scheduler", dask_cluster.scheduler_file)
        _, err = proc.communicate(timeout=300)
    finally:
        (dask_cluster.hooks / "die_deadly.nii.gz").unlink()
    assert proc.returncode == 1, err
    reasons = failures(out)
    assert list(reasons) == [str(study / "deadly.nii.gz")] and "KilledWorker" in reasons[str(study / "deadly.nii.gz")]
    assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"ok1", "ok2"}
    assert no_partial_files(out)
    dask_cluster.wait_for_workers(2)


def test_ctrl_c_cancels_the_study_s_tasks(dask_cluster, tmp_path, random_model_path):
    from distributed import Client

    study = make_study(tmp_path / "in", ["i1", "i2", "i3", "i4"])
    out = tmp_path / "out"
    with cli_on_cluster(dask_cluster, study, out, random_model_path, slow=["i1", "i2", "i3", "i4"]) as proc:
        _wait_for_record(out / "i1" / IN_PROGRESS)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; finished subjects are kept, rerun with --resume" in err and "Traceback" not in err
    with Client(scheduler_file=str(dask_cluster.scheduler_file), timeout="30s") as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])
            if not [k for k in left if k.startswith("pancakes-i")]:
                break
            time.sleep(0.5)
        assert not [k for k in left if k.startswith("pancakes-i")]
    # The subjects not begun were never segmented: the workers stopped taking the study's tasks.
    assert len(markers(out)) < 4


def test_losing_the_scheduler_is_one_line_and_resume_continues(dask_cluster, tmp_path, random_model_path, capsys):
    study = make_study(tmp_path / "in", ["s1", "s2", "s3"])
    out = tmp_path / "out"
    with cli_on_cluster(dask_cluster, study, out, random_model_path, slow=["s1", "s2", "s3"]) as proc:
        _wait_for_record(out / "s1" / IN_PROGRESS)
        dask_cluster.stop()  # the scheduler and its workers go
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert f"pancakes: lost the Dask scheduler at {dask_cluster.scheduler_file}; finished subjects are kept, " \
           "rerun with --resume" in err
    assert "Traceback" not in err
    # The record of the subject the dead worker was in says so; --retry-crashed with --resume finishes.
    rc, _, err = run(capsys, "segment", study, "-o", out, "--model", random_model_path, "-M", M, "-K", K, "-q",
                     "--workers", 1, "--resume", "--retry-crashed")
    assert rc == 0, err
    assert {r["subject"] for r in read_volumes_csv(out / "volumes.csv")} == {"s1", "s2", "s3"}
