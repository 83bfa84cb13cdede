"""A real Dask cluster on loopback for the cluster tests: one ``dask scheduler`` and ``dask worker``
processes (each under its nanny), started as subprocesses with a scheduler file, stopped by the caller.

Every process is started in its own session, so that stopping it (SIGTERM, then SIGKILL) also ends
the worker its nanny spawned, and nothing outlives the test.

The workers load ``HOOKS`` (``--preload``): files in the folder named by PANCAKES_TEST_HOOKS make the
segmentation of one input slow (``slow_<file name>``: 4 s) or kill the worker process
(``die_<file name>``: SIGKILL, as the kernel's OOM killer would), so that tests can kill a worker
mid-task at a known moment.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[3]
HOOKS = '''
import os, signal, time
import pancakes.batch as batch
_real = getattr(batch, "_unhooked_segment_loaded", batch.segment_loaded)  # Dask may run this file twice
batch._unhooked_segment_loaded = _real
def _hooked(model, loaded, opts, name, bar=None):
    folder, base = os.environ.get("PANCAKES_TEST_HOOKS", ""), os.path.basename(name)
    if folder and os.path.exists(os.path.join(folder, "die_" + base)):
        os.kill(os.getpid(), signal.SIGKILL)
    if folder and os.path.exists(os.path.join(folder, "slow_" + base)):
        time.sleep(4)
    return _real(model, loaded, opts, name, bar)
batch.segment_loaded = _hooked
'''


def env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment"), OMP_NUM_THREADS="1", **extra)


class DaskProcesses:
    """``dask scheduler`` + ``workers`` ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, folder: Path, workers: int = 2, allowed_failures: int = 1) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.hooks = folder / "hooks"
        self.hooks.mkdir(parents=True, exist_ok=True)
        (folder / "pancakes_test_hooks.py").write_text(HOOKS, encoding="utf-8")
        self.procs: List[subprocess.Popen] = []
        self.log = open(folder / "dask.log", "ab")
        scheduler_env = env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=str(allowed_failures))
        self._start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(self.scheduler_file)], scheduler_env)
        for _ in range(workers):
            self.add_worker()

    def _start(self, args, environ) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=self.folder, env=environ,
                                stdout=self.log, stderr=self.log, start_new_session=True)
        self.procs.append(proc)
        return proc

    def add_worker(self) -> subprocess.Popen:
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler wrote no scheduler file")
            time.sleep(0.2)
        return self._start(["worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
                            "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(self.folder / "w"),
                            "--preload", str(self.folder / "pancakes_test_hooks.py")],
                           env(PANCAKES_TEST_HOOKS=str(self.hooks)))

    def wait_for_workers(self, n: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(scheduler_file=str(self.scheduler_file), timeout="30s") as client:
            client.wait_for_workers(n, timeout=timeout)

    def stop_scheduler(self) -> None:
        self._stop(self.procs[0])

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)  # its own session: the nanny's worker child goes too
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self._stop(proc)
        # The nanny's worker children share their nanny's session: make sure none is left.
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()
