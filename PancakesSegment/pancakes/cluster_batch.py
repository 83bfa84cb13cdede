"""The client side of a cluster study: ``pancakes segment ... --scheduler ADDRESS`` or ``--workers N``.

The same study as ``batch.run_batch``, with the subjects run as Dask tasks (``cluster_worker``):
the client decides what to do (``--resume`` skips complete subjects, a subject an earlier process
died in is listed unless ``--retry-crashed``), submits one task per remaining subject, shows one
progress bar over the tasks, and writes the study-level files (volumes.csv, gallery, failures.csv)
itself at the end, from every finished subject in OUT, exactly as the in-process run does.

The client does not load the network (importing torch and deserialising the model would cost it seconds
that the in-process run spends once): it reads the model file's metadata from the archive
(model_metadata.py), and its first task (``start_model_load``) has a worker load the model, which that
worker keeps for its subjects, and answer the adaptation in effect, its device and torch version.

Faults:
- a worker that dies mid-task: Dask reruns the task on another worker; the rerun clears the dead
  attempt's temporary files, so nothing is lost, doubled or left partial;
- a subject that keeps killing workers: after Dask's allowed failures
  (``distributed.scheduler.allowed-failures``, 3 by default) its task ends with ``KilledWorker``,
  which goes to failures.csv as its reason, and its in-progress record stays, so a later run lists it
  as crashed until ``--retry-crashed``. Dask also gives up on the tasks that merely waited in the
  queue of those workers; they never started (no in-progress record), so the client submits them
  again (up to ``INNOCENT_RETRIES`` times);
- Ctrl-C cancels the study's tasks; losing the scheduler raises ``SchedulerLost`` (the CLI prints one
  line and exits 3). Finished subjects are kept either way, and ``--resume`` continues.

Usage::

    with connect(args.scheduler, args.workers) as client:
        loading = start_model_load(client, spec)   # spec = ModelSpec(path, sha, device, adapt, coarse)
        subjects, problems = find_subjects(...)      # meanwhile a worker loads the model
        result = run_cluster_batch(client, subjects, opts, spec, problems, loading=loading)
    # (the CLI also passes release=connection.release: the cluster stops before the study files are written)
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Set, Tuple

from tqdm import tqdm

from .batch import (BatchOptions, BatchResult, Report, _stderr, one_line, read_marker, write_run_record,
                    write_summaries)
from .cluster import SchedulerLost, refuse_blind_workers, write_probe
from .cluster_worker import ModelInfo, ModelSpec, model_info, segment_task
from .errors import PancakesInputError
from .in_progress import CRASHED, crashed_before, read_record
from .inputs import Subject
from .manifest import check_resume, run_settings
from .model_metadata import read_metadata
from .segio import FORMATS, PARTIAL

INNOCENT_RETRIES = 3  # resubmissions of a task that Dask gave up on while it only waited on dying workers


def _absolute(subject: Subject) -> Subject:
    """Workers run in other folders: they get absolute input paths (the source shown stays as given)."""
    return replace(subject, files=[os.path.abspath(f) for f in subject.files])


def _clear_partials(sdir: Path) -> None:
    """Temporary files a killed worker left (a subject that ended in KilledWorker is not rerun)."""
    for tmp in sdir.glob(f".*{PARTIAL}*"):
        tmp.unlink(missing_ok=True)


def _scheduler_gone(client) -> bool:
    return getattr(client, "status", "running") not in ("running", "connecting")


def start_model_load(client, spec: ModelSpec):
    """Have a worker load the model now (the future of ``model_info``), so that it loads while the client
    still scans the inputs; the worker keeps it for its subjects."""
    return client.submit(model_info, spec, pure=False, key=f"pancakes-model-{uuid.uuid4().hex[:8]}")


def loaded_model(client, loading, spec: ModelSpec, report: Report = _stderr) -> ModelInfo:
    """What the worker answered of ``start_model_load``; PancakesInputError (one line) when it could not
    load the model, SchedulerLost when the scheduler went away meanwhile."""
    metadata = read_metadata(spec.path)
    try:
        answer = loading.result()
    except BaseException as exc:
        if _scheduler_gone(client):
            raise SchedulerLost(str(exc)) from exc
        if not isinstance(exc, Exception):  # Ctrl-C: the load need not go on
            loading.cancel()
            raise
        raise PancakesInputError(f"{spec.path}: {one_line(exc, spec.path)}") from None
    if answer["adapt"] < spec.adapt:  # said by the worker's load, on the worker's stderr
        report(f"pancakes: {spec.path}: this model file has no decode_logits_adapted (exported by an older "
               "version): decoding without prototype adaptation; re-export it to enable it")
    return ModelInfo(metadata, **answer)


def run_cluster_batch(client, subjects: Sequence[Subject], opts: BatchOptions, spec: ModelSpec,
                      problems: Sequence[Tuple[str, str]] = (), report: Report = _stderr,
                      loading=None, release: Callable[[], None] = lambda: None) -> BatchResult:
    """Segment every subject on the cluster behind ``client``; a failing one is reported in one line
    and the rest carry on. ``loading``: the future of ``start_model_load`` (started here when None);
    its answer gives the adaptation in effect and names the run in OUT/run.json and report.html.
    ``release`` is called once every task has answered, before the study-level files are written (the
    CLI's ``Connection.release``: a local cluster is stopped first, it would slow the writing)."""
    from distributed import as_completed

    if opts.fmt not in FORMATS:
        raise PancakesInputError(f"format {opts.fmt!r}: use one of {', '.join(FORMATS)}")
    info = loaded_model(client, loading if loading is not None else start_model_load(client, spec), spec, report)
    out_dir = Path(os.path.abspath(opts.out_dir))
    opts = replace(opts, adapt=info.adapt, coarse=info.coarse, superpixels=info.superpixels, out_dir=out_dir)
    if opts.resume:  # before any work, as in-process: a refused run leaves OUT as it was
        check_resume(out_dir, run_settings(opts.protocols, opts.labels, opts.fmt, opts.axis, opts.adapt, spec.sha256,
                                           opts.coarse, opts.superpixels))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(failures=list(problems))
    for source, reason in problems:
        report(f"pancakes: {source}: {reason}")
    markers: Dict[int, Tuple[str, Dict]] = {}  # subject index -> (name, marker), for the in-order tables
    todo: List[Tuple[int, Subject]] = []
    for i, subject in enumerate(subjects):
        marker = read_marker(out_dir, subject, opts, spec.sha256) if opts.resume else None
        if marker is not None:
            result.skipped.append(subject.name)
            markers[i] = (subject.name, marker)
        elif not opts.retry_crashed and crashed_before(out_dir / subject.name, subject):
            result.failures.append((subject.source, CRASHED))
            report(f"pancakes: {subject.source}: {CRASHED}")
        else:
            todo.append((i, subject))
    probe = write_probe(out_dir)
    futures = {}
    devices: Set[str] = set()  # where the subjects ran, for run.json
    bar = tqdm(total=len(subjects), initial=len(subjects) - len(todo), unit="subject", desc="pancakes",
               disable=None if opts.progress else True)
    try:
        refuse_blind_workers(client, out_dir, probe.name)
        for i, subject in todo:
            fut = client.submit(segment_task, _absolute(subject), opts, spec, probe.name, pure=False,
                                key=f"pancakes-{subject.name}-{probe.name[-8:]}", priority=-i)
            futures[fut] = (i, subject)
        tasks = as_completed(list(futures), loop=client.loop)
        resubmitted: Dict[int, int] = {}
        for fut in tasks:
            i, subject = futures[fut]
            answer = _answer(fut, subject, client)
            if _innocent_victim(answer, out_dir / subject.name, subject) and resubmitted.get(i, 0) < INNOCENT_RETRIES:
                resubmitted[i] = resubmitted.get(i, 0) + 1
                again = client.submit(segment_task, _absolute(subject), opts, spec, probe.name, pure=False,
                                      key=f"pancakes-{subject.name}-{probe.name[-8:]}-{resubmitted[i]}", priority=-i)
                futures[again] = (i, subject)
                tasks.add(again)
                continue
            bar.set_postfix_str(subject.name[:30], refresh=False)
            bar.update(1)
            if answer.get("status") == "done":
                result.completed.append(subject.name)
                markers[i] = (subject.name, answer["marker"])
                devices.add(answer.get("device") or info.device)
            else:
                _clear_partials(out_dir / subject.name)
                result.failures.append((subject.source, answer["reason"]))
                report(f"pancakes: {subject.source}: {answer['reason']}")
    except BaseException as exc:  # Ctrl-C, a lost scheduler: the study's tasks go, finished subjects stay
        if futures and not _scheduler_gone(client):
            try:
                client.cancel(list(futures), force=True)
            except Exception:
                pass
        if not isinstance(exc, (KeyboardInterrupt, SchedulerLost, PancakesInputError)) and _scheduler_gone(client):
            raise SchedulerLost(str(exc)) from exc
        raise
    finally:
        bar.close()
        probe.unlink(missing_ok=True)
    release()
    done = [markers[i] for i in sorted(markers)]
    done, failures = write_summaries(opts, done, result.failures, spec.sha256,
                                     [s.source for s in subjects] + [source for source, _ in problems])
    if devices:
        info = replace(info, device=", ".join(sorted(devices)))
    write_run_record(info, opts, spec.sha256, started, done, failures)
    return result


def _innocent_victim(answer: Dict, sdir: Path, subject: Subject) -> bool:
    """A task Dask gave up on (KilledWorker) that never started: it only sat queued on the workers that
    a guilty subject killed. Guilty ones leave their in-progress record behind; this one has none."""
    if answer.get("status") == "done" or not answer.get("reason", "").startswith("KilledWorker"):
        return False
    record = read_record(sdir)
    return record is None or record.get("source_key") != subject.key


def _answer(fut, subject: Subject, client) -> Dict:
    """The task's answer, or a failure whose reason is what ended it (KilledWorker after Dask's
    allowed failures); SchedulerLost when the scheduler went away."""
    if fut.status == "finished":
        try:
            return fut.result()
        except Exception as exc:  # the result could not come back (connection lost while fetching it)
            if _scheduler_gone(client):
                raise SchedulerLost(str(exc)) from exc
            return {"status": "failed", "reason": one_line(exc, subject.source)}
    if fut.status == "cancelled" or _scheduler_gone(client):
        raise SchedulerLost(f"task of {subject.source} was {fut.status}")
    exc = fut.exception()
    return {"status": "failed", "reason": one_line(exc, subject.source)}
