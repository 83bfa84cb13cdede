"""Connecting ``pancakes segment`` to a Dask distributed cluster (``--scheduler``, ``--workers``).

Dask is an optional extra (``pip install -e ".[cluster]"``): nothing here imports it at module
level, and asking for a cluster without it is one line saying how to install it. No torch either.

Usage::

    with connect("tcp://10.0.0.5:8786") as client: ...       # an existing scheduler
    with connect("/shared/scheduler.json") as client: ...    # its scheduler file (dask-jobqueue, SLURM)
    with connect(None, workers=2) as client: ...              # a local cluster of 2 worker processes
    connection = connect(None, workers=1)
    with connection as client: ...; connection.release()      # closed now, before the client's own work
    probe = write_probe(out_dir); refuse_blind_workers(client, out_dir, probe.name)
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Dict, Optional, Tuple

from .errors import PancakesInputError

INSTALL_HINT = ("the cluster options need Dask's distributed scheduler, which is not installed: "
                "pip install -e \".[cluster]\" (or pip install \"dask[distributed]\")")
PROBE_PREFIX = ".pancakes_cluster_probe_"
CONNECT_TIMEOUT = "20s"


class SchedulerLost(RuntimeError):
    """The connection to the scheduler went away during a study."""


def import_distributed():
    """The ``distributed`` module, or PancakesInputError with the install hint."""
    try:
        import distributed
    except ImportError:
        raise PancakesInputError(INSTALL_HINT) from None
    return distributed


def is_address(text: str) -> bool:
    """'tcp://host:port' (any Dask protocol), as opposed to the path of a scheduler file."""
    return "://" in text


def usable_cpus() -> int:
    """The cores this process may run on: its affinity mask (taskset, a SLURM job's cgroup, a container's
    cpuset), which os.cpu_count() ignores; the machine's count where there is no mask (macOS, Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def local_worker_env(workers: int, cpus: Optional[int] = None) -> Dict[str, str]:
    """Environment of the local workers. Dask's nanny pins OMP/MKL to 1 thread per worker; with fewer
    workers than cores that would leave cores idle, so each worker gets its share of the cores it may use
    (torch reads OMP_NUM_THREADS when it starts; more threads than cores only makes them wait on each other)."""
    cpus = cpus or usable_cpus()
    threads = str(max(1, cpus // max(1, workers)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}


# For the local cluster of --workers N, which serves no dashboard: its workers' statistical profiler (the task
# thread's stack every 10 ms) goes, and the event loop's tick (20 ms), the memory monitor (100 ms) and the system
# monitor (500 ms) wake less often. Each wakes the worker's event loop thread, which then takes the GIL from the
# task: with the defaults the subjects of 4 CT-sized volumes on one core took 5-8 % longer in a worker than
# in-process, with these 0-4 %. Memory limits are still enforced, within a second instead of 0.1 s.
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1000ms",
                "distributed.worker.memory.monitor-interval": "1s",
                "distributed.admin.system-monitor.interval": "5s",
                # Dask's nanny also sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which turns off glibc's
                # adaptive mmap threshold: every large temporary array is then mmapped and page-faulted afresh.
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


class Connection:
    """``with connect(...) as client``: the client, closed (with the local cluster, if one was started) on the
    way out. ``release()`` closes them early, once nothing more will be submitted: a local cluster's scheduler
    and nannies run on threads of the client process, and left running they slow the client's own writing of
    the study-level files (the sample, --workers 1, a loaded machine: last subject to exit 2.4-2.5 s when
    stopped first, 2.7 s when stopped in a background thread meanwhile, 2.8-3.0 s when stopped at the end)."""

    def __init__(self, scheduler: Optional[str], workers: Optional[int]) -> None:
        self.scheduler, self.workers = scheduler, workers
        self.client = self.cluster = None
        self.closed = False

    def __enter__(self):
        self.client, self.cluster = _open(self.scheduler, self.workers)
        return self.client

    def release(self) -> None:
        if self.closed or self.client is None:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)

    def release_finished(self) -> None:
        """``release`` once every task has answered. The idle workers of a local cluster are ended at once
        instead of being asked to shut down: the polite way took 0.5-0.6 s (a worker with torch loaded
        winding down), a tenth of the 1-worker overhead on the bundled sample (benchmarks/README.md).
        Nothing is lost: each subject's outputs were written, atomically, before its task answered. An
        external cluster's workers are not ours to end."""
        if not self.closed and self.cluster is not None:
            with contextlib.suppress(Exception):
                end_processes(self.client.run(os.getpid, wait=True).values())
        self.release()

    def __exit__(self, *exc_info) -> None:
        self.release()


def end_processes(pids) -> None:
    """SIGKILL each pid that still runs (the local workers of a finished study)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)


def connect(scheduler: Optional[str], workers: Optional[int] = None) -> Connection:
    """A ``distributed.Client`` on the scheduler (address or scheduler file), or on a local cluster of
    ``workers`` processes started here (and stopped on the way out)."""
    return Connection(scheduler, workers)


def _open(scheduler: Optional[str], workers: Optional[int]) -> Tuple:
    """-> (client, the local cluster or None); PancakesInputError (one line) when there is no scheduler."""
    distributed = import_distributed()
    # Dask logs a lost connection as a traceback on stderr; the study says it in one line instead.
    for name in ("distributed", "distributed.client", "distributed.core", "distributed.comm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = None
    try:
        if scheduler is None:
            if not workers or workers < 1:
                raise PancakesInputError(f"--workers {workers}: must be at least 1")
            import dask

            with dask.config.set(LOCAL_CONFIG):  # the nannies hand this config to their worker processes
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, env=local_worker_env(workers),
                                                   silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster, set_as_default=False)
        elif is_address(scheduler):
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        elif Path(scheduler).is_file():
            client = distributed.Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        else:
            raise PancakesInputError(f"--scheduler {scheduler}: neither an address (tcp://host:port) nor an "
                                     "existing scheduler file")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise PancakesInputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return client, cluster


def write_probe(out_dir: Path) -> Path:
    """A uniquely named empty file in OUT that every worker must see (removed by the caller)."""
    probe = Path(out_dir) / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    probe.write_bytes(b"")
    return probe


def sees_out(out_dir: str, probe_name: str) -> Optional[str]:
    """Run on a worker: None when it sees OUT (the client's probe is there), else the reason."""
    if (Path(out_dir) / probe_name).is_file():
        return None
    return (f"{out_dir}: the output folder is not visible on worker host {socket.gethostname()}: every worker "
            "must see the inputs and OUT at the same paths (a shared filesystem)")


def refuse_blind_workers(client, out_dir: Path, probe_name: str) -> int:
    """Ask every worker now connected whether it sees OUT; PancakesInputError naming the first that does
    not. Waits for a first worker when none is there yet. -> the number of workers."""
    client.wait_for_workers(1)  # a SLURM job may still wait in the queue; Ctrl-C stops the wait
    answers = client.run(sees_out, str(out_dir), probe_name)
    for worker, reason in sorted(answers.items()):
        if reason:
            raise PancakesInputError(f"{reason} (worker {worker})")
    return len(answers)
