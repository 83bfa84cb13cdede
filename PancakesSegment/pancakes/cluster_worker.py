"""The worker side of a cluster study: one task segments one subject with the batch code.

A task is ``segment_task(subject, opts, spec, probe_name)``. It runs in a Dask worker process, which
loads the model once and keeps it for every later task of the same model, device and adaptation. The
client never loads the network itself: its first task, ``model_info(spec)``, has a worker load the model
(while the client scans the inputs) and answer what the client needs from it, the adaptation in effect
(an older model file decodes without it), the device and the torch version. The subject goes through ``batch.process_subject``, the very code of the in-process run,
so the files, the marker and the in-progress record are the same, written atomically. A worker killed
mid-task leaves only the in-progress record and hidden temporary files, which the rerun of the task
on another worker clears.

Devices: ``--device cpu`` or ``cuda:N`` is taken as given. ``auto`` and ``cuda`` mean the worker's own
GPU: the first visible one (a worker started with ``CUDA_VISIBLE_DEVICES=N`` or by ``dask cuda worker``
sees just its own), or, when one process sees several, the one its worker name picks (local workers are
named 0, 1, ...), so that the workers of one machine spread over its GPUs.

Usage (what cluster_batch submits)::

    spec = ModelSpec(path="/shared/pancakes.pt", sha256=..., device="auto", adapt=1.0, coarse=True)
    info = ModelInfo(metadata, **client.submit(model_info, spec, pure=False).result())
    client.submit(segment_task, subject, opts, spec, probe.name, pure=False)
"""
from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .batch import BatchOptions, file_sha256, one_line, process_subject
from .cluster import sees_out
from .errors import ModelFileError
from .inputs import Subject


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the client's model: a path every worker sees, its hash, and the
    adaptation, coarse protocol and superpixel pooling asked for (``--adapt``, ``--coarse``, ``--superpixels``)."""

    path: str
    sha256: str
    device: str = "auto"
    adapt: float = 1.0
    coarse: bool = True
    superpixels: bool = True


@dataclass(frozen=True)
class ModelInfo:
    """The client's view of the model a worker loaded; it names the run in run.json (batch.write_run_record
    reads ``metadata`` and ``device``, manifest.run_record ``torch_version``) as a loaded model does."""

    metadata: Dict
    adapt: float  # in effect: 0 for a model file exported before the adaptation existed
    device: str
    torch_version: Optional[str] = None
    coarse: bool = False  # in effect: False for a model whose head has no label queries
    superpixels: bool = False


_MODELS: Dict[Tuple, object] = {}  # this worker process's loaded models (normally one)
_LOCK = threading.Lock()
LOADS = {"count": 0}  # how many times this process loaded a model (tests ask it through client.run)


def pick_device(requested: str, gpus: int, worker_name: Optional[str]) -> str:
    """The torch device name a worker uses for ``--device requested`` when it sees ``gpus`` GPUs."""
    if requested == "cpu" or requested.startswith("cuda:"):
        return requested
    if gpus == 0:
        return requested  # 'auto' -> CPU; 'cuda' -> the device check's own clear error
    if gpus == 1 or worker_name is None:
        return "cuda:0"
    name = str(worker_name)
    index = int(name) if name.isdigit() else zlib.crc32(name.encode("utf-8"))
    return f"cuda:{index % gpus}"


def _worker_name() -> Optional[str]:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def worker_model(spec: ModelSpec):
    """The model of ``spec`` for this process: loaded on the first call, cached after."""
    key = (spec.path, spec.sha256, spec.device, spec.adapt, spec.coarse, spec.superpixels)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            import torch

            from .engine import Pancakes

            try:
                sha = file_sha256(spec.path)
            except OSError:
                raise ModelFileError(f"{spec.path}: model file not visible on this worker") from None
            if sha != spec.sha256:
                raise ModelFileError(f"{spec.path}: this worker's copy of the model file differs from the client's")
            gpus = torch.cuda.device_count() if spec.device != "cpu" else 0
            device = pick_device(spec.device, gpus, _worker_name())
            model = Pancakes.load(spec.path, device=device, adapt=spec.adapt, coarse=spec.coarse,
                                  superpixels=spec.superpixels)
            _MODELS.clear()  # one model per worker: a study with another model replaces it
            _MODELS[key] = model
            LOADS["count"] += 1
    return model


def model_info(spec: ModelSpec) -> Dict:
    """Run as a task: load the model on this worker (kept for its later tasks) -> what the client needs of it."""
    import torch

    model = worker_model(spec)
    # str(): torch.__version__ is a TorchVersion, which would make the client import torch to unpickle it.
    return {"adapt": float(model.adapt), "coarse": bool(model.coarse), "superpixels": bool(model.superpixels),
            "device": str(model.device),
            "torch_version": str(torch.__version__)}


def segment_task(subject: Subject, opts: BatchOptions, spec: ModelSpec, probe_name: str) -> Dict:
    """Segment one subject on this worker -> {"status": "done", "marker": ...} or
    {"status": "failed", "reason": ...}. Only a dying process escapes it (Dask reruns the task)."""
    blind = sees_out(str(opts.out_dir), probe_name)
    if blind:
        return {"status": "failed", "reason": blind}
    try:
        model = worker_model(spec)
        marker = process_subject(model, subject, opts, spec.sha256)
    except Exception as exc:  # one bad input must not stop the study
        return {"status": "failed", "reason": one_line(exc, subject.source)}
    return {"status": "done", "marker": marker, "device": str(model.device)}


def model_loads() -> int:
    """Run on a worker (client.run): how many times its process loaded a model."""
    return LOADS["count"]
