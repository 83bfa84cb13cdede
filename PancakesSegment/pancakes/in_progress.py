"""The record of the subject being segmented, so that a process that dies mid-subject does not stall a batch.

A native crash (segfault in a reader or library) or the kernel's OOM killer ends the
process with no Python exception to catch: nothing is written, and before this record
every ``--resume`` started the same subject again and died again. The batch writes
``OUT/<subject>/.in_progress.json`` before it reads a subject and removes it on every
exit that Python sees (success, a reported failure, Ctrl+C). A record that is still
there on the next run therefore means the process died inside that subject.

Usage::

    if crashed_before(sdir, subject) and not retry:
        failures.append((subject.source, CRASHED))
    mark_started(sdir, subject); ...; mark_ended(sdir)
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from .inputs import Subject
from .segio import write_text

IN_PROGRESS = ".in_progress.json"
CRASHED = ("the process died while segmenting it (a native crash, or killed for lack of memory); "
           "rerun with --retry-crashed to try it again")


def mark_started(sdir: Path, subject: Subject) -> Path:
    """Record that ``subject`` is being segmented (its identity and input stamp, who and when)."""
    record = {"source_key": subject.key, "source_stamp": subject.stamp(), "source": subject.source,
              "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # ASCII escapes: a file name that is not UTF-8 holds lone surrogates, which UTF-8 cannot encode
    # (the reader rejects such an input later, with its own message); json.loads gives them back.
    return write_text(sdir / IN_PROGRESS, json.dumps(record, ensure_ascii=True) + "\n")


def mark_ended(sdir: Path) -> None:
    """Remove the record; a subject folder left empty (its input failed before anything was written) goes
    too, so that OUT holds no folder that looks like a subject with no outputs."""
    (sdir / IN_PROGRESS).unlink(missing_ok=True)
    try:
        sdir.rmdir()  # only succeeds when empty: outputs of this or an earlier run keep the folder
    except OSError:
        pass


def read_record(sdir: Path) -> Optional[dict]:
    try:
        record = json.loads((sdir / IN_PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def crashed_before(sdir: Path, subject: Subject) -> bool:
    """True when an earlier process died while segmenting this very input (same file, unchanged).
    A replaced input is a new attempt, so it is tried again without asking."""
    record = read_record(sdir)
    return record is not None and record.get("source_key") == subject.key \
        and record.get("source_stamp") == subject.stamp()
