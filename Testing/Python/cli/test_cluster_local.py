"""``pancakes segment --workers N`` (a local Dask cluster), the cluster options' refusals, and the
workers' choice of device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runs import M, K, no_partial_files, run
from study_files import write_volume

from pancakes.cluster import INSTALL_HINT, local_worker_env
from pancakes.cluster_worker import pick_device
from pancakes.label_volumes import read_volumes_csv


def _labels(out):
    return {f.name: sitk.GetArrayFromImage(sitk.ReadImage(str(f))) for f in sorted(out.rglob("*_P*.seg.nrrd"))}


def test_workers_2_gives_the_in_process_result(tmp_path, random_model_path, capsys):
    pytest.importorskip("distributed")
    study = tmp_path / "in"
    study.mkdir()
    for seed, name in enumerate(["w1", "w2", "w3"]):
        write_volume(study / f"{name}.nii.gz", shape=(10, 20, 24), seed=seed)
    common = ["segment", study, "--model", random_model_path, "-M", M, "-K", K, "-q"]
    rc, _, err = run(capsys, *common, "-o", tmp_path / "local")
    assert rc == 0, err
    rc, _, err = run(capsys, *common, "-o", tmp_path / "two", "--workers", 2)
    assert rc == 0, err
    assert "3 segmented" in err
    mine, theirs = _labels(tmp_path / "two"), _labels(tmp_path / "local")
    assert sorted(mine) == sorted(theirs) and len(mine) == 3 * M
    for name in mine:
        np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)
    assert read_volumes_csv(tmp_path / "two" / "volumes.csv") == read_volumes_csv(tmp_path / "local" / "volumes.csv")
    assert no_partial_files(tmp_path / "two")
    # The run record and the report, as in-process; and the same --resume guard.
    manifests = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("two", "local")]
    assert manifests[0]["settings"] == manifests[1]["settings"]
    assert [e["subject"] for e in manifests[0]["subjects"]] == [e["subject"] for e in manifests[1]["subjects"]]
    assert (tmp_path / "two" / "report.html").is_file()
    before = (tmp_path / "two" / "run.json").read_bytes()
    rc, _, err = run(capsys, *[a if a != K else K + 1 for a in common], "-o", tmp_path / "two", "--workers", 1,
                     "--resume")
    assert rc == 2 and "--resume refused" in err, err
    assert (tmp_path / "two" / "run.json").read_bytes() == before


def test_without_dask_the_cluster_options_say_how_to_install_it(tmp_path, random_model_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    write_volume(tmp_path / "a.nii.gz")
    for option in (["--scheduler", "tcp://127.0.0.1:8786"], ["--workers", "2"]):
        rc, _, err = run(capsys, "segment", tmp_path / "a.nii.gz", "-o", tmp_path / "out", "--model",
                         random_model_path, *option)
        assert rc == 2
        assert err == f"pancakes: {INSTALL_HINT}\n"
        assert 'pip install -e ".[cluster]"' in err


def test_cluster_option_refusals(tmp_path, random_model_path, capsys):
    pytest.importorskip("distributed")
    write_volume(tmp_path / "a.nii.gz")
    base = ["segment", tmp_path / "a.nii.gz", "-o", tmp_path / "out", "--model", random_model_path]
    rc, _, err = run(capsys, *base, "--scheduler", tmp_path / "no-such-file.json")
    assert rc == 2 and "neither an address (tcp://host:port) nor an existing scheduler file" in err
    rc, _, err = run(capsys, *base, "--workers", 0)
    assert rc == 2 and err == "pancakes: --workers 0: must be at least 1\n"
    rc, _, err = run(capsys, *base, "--workers", 1, "--scheduler", "tcp://127.0.0.1:8786")
    assert rc == 2 and "not allowed with argument" in err


def test_workers_pick_their_device():
    assert pick_device("cpu", 4, "0") == "cpu"
    assert pick_device("cuda:2", 4, "0") == "cuda:2"
    assert pick_device("auto", 0, "0") == "auto"  # no GPU: 'auto' is the CPU
    assert pick_device("auto", 1, "3") == "cuda:0"  # CUDA_VISIBLE_DEVICES / dask-cuda: its own GPU
    assert [pick_device("cuda", 2, str(n)) for n in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    named = pick_device("auto", 4, "tcp://10.0.0.1:4000")
    assert named.startswith("cuda:") and named == pick_device("auto", 4, "tcp://10.0.0.1:4000")


def test_local_workers_share_the_cores():
    assert local_worker_env(1, cpus=2)["OMP_NUM_THREADS"] == "2"
    assert local_worker_env(2, cpus=2)["OMP_NUM_THREADS"] == "1"
    assert local_worker_env(8, cpus=2)["OMP_NUM_THREADS"] == "1"


def test_the_client_leaves_loading_the_model_to_its_workers(tmp_path, random_model_path, capsys):
    """The cluster client neither deserialises the network nor imports torch (seconds it would spend for
    nothing): it reads the model file's metadata, and the workers, other processes, load the model."""
    pytest.importorskip("distributed")
    import torch

    write_volume(tmp_path / "a.nii.gz", shape=(6, 20, 24))
    args = ["segment", str(tmp_path / "a.nii.gz"), "--model", str(random_model_path), "-M", str(M), "-K", str(K),
            "-q", "-o", str(tmp_path / "out"), "--workers", "1", "--device", "cpu"]
    client = ("import sys; from pancakes.cli import main; rc = main(sys.argv[1:]); "
              "print('client imported torch' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", client, *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no torch"
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert manifest["model"]["format_version"] == 1 and manifest["model"]["trained"] is False
    assert manifest["settings"]["adapt"] == 1.0 and manifest["settings"]["coarse"] is True
    assert manifest["runs"][-1]["device"] == "cpu" and manifest["runs"][-1]["torch_version"] == torch.__version__
    # A file whose metadata reads well but whose network does not load: the worker says so, in one line.
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("broken/extra/metadata.json", json.dumps({"format_version": 1}))
    rc, _, err = run(capsys, "segment", tmp_path / "a.nii.gz", "--model", broken, "-q", "-o", tmp_path / "out2",
                     "--workers", 1)
    assert rc == 2 and err.count("\n") == 1 and "broken.pt: not a readable TorchScript model" in err, err
    assert not (tmp_path / "out2" / "run.json").exists()


def test_release_stops_the_local_cluster_before_the_exit():
    """What lets the client write the study-level files without the local cluster running beside it."""
    pytest.importorskip("distributed")
    from pancakes.cluster import connect

    connection = connect(None, workers=1)
    with connection as client:
        assert client.submit(sum, [1, 2], pure=False).result() == 3
        connection.release()
        assert client.status == "closed" and connection.cluster.status.name == "closed"
        connection.release()  # a second release, and the exit, find nothing left to close
    assert connection.closed


def test_local_workers_count_the_cores_they_may_use(monkeypatch):
    """A study started under taskset or in a SLURM job may use fewer cores than the machine has."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert local_worker_env(1)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert local_worker_env(2)["OMP_NUM_THREADS"] == "2"


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_finished_study_ends_its_local_workers_at_once():
    """release_finished ends the idle local worker processes instead of asking them to shut down."""
    pytest.importorskip("distributed")
    from pancakes.cluster import connect

    connection = connect(None, workers=1)
    with connection as client:
        pids = list(client.run(os.getpid).values())
        assert pids and all(_alive(p) for p in pids)
        connection.release_finished()
        assert client.status == "closed" and connection.cluster.status.name == "closed"
    assert not any(_alive(p) for p in pids)
