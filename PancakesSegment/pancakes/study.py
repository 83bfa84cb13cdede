"""What the study-level outputs (volumes.csv, gallery pages, failures.csv) cover: the whole OUT folder.

A second run into the same OUT that adds subjects used to rewrite these tables from its
own subjects only, so the first run's subjects vanished from them. They now list every
finished subject in OUT whose marker has the same M, K, model, adaptation, coarse and pooling settings, and every
failure of an earlier run with those settings that has not been retried or fixed since.

Earlier failures live in ``OUT/.failures.json`` (all settings, one entry per input);
``failures.csv`` shows the entries of the current settings.

Usage::

    done = study_subjects(out, this_run_done, M, K, model_sha256, adapt, coarse, superpixels)
    rows = study_failures(out, this_run_failures, attempted, finished_sources, M, K, model_sha256)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Set, Tuple

from .inputs import MARKER
from .segio import write_json

FAILURES_STATE = ".failures.json"
THUMBNAIL = ".thumbnail.npz"  # batch.py writes it beside the marker


def _finished(sdir: Path, M: int, K: int, model_sha256: str, adapt: float, coarse: bool,
              superpixels: bool) -> Dict:
    """The marker of a finished subject folder with these settings whose files are all there, else {}."""
    try:
        marker = json.loads((sdir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    # Markers written before the coarse protocol existed (no "coarse") had every protocol fine, and
    # those written before superpixel pooling (no "superpixels") were unpooled.
    if not isinstance(marker, dict) or (marker.get("M"), marker.get("K"), marker.get("model_sha256"),
                                        marker.get("adapt"), bool(marker.get("coarse", False)),
                                        bool(marker.get("superpixels", False))) \
            != (M, K, model_sha256, adapt, bool(coarse), bool(superpixels)):
        return {}
    files = [sdir / f for f in marker.get("files", [])] + [sdir / THUMBNAIL]
    return marker if all(p.is_file() for p in files) and "counts" in marker else {}


def study_subjects(out_dir: Path, this_run: Sequence[Tuple[str, Dict]], M: int, K: int, model_sha256: str,
                   adapt: float, coarse: bool, superpixels: bool) -> List[Tuple[str, Dict]]:
    """(folder name, marker) of every finished subject in OUT with these settings: earlier runs'
    subjects first (by name), then this run's in its order. An input met twice (two folders with one
    source) is listed once, from this run when it is in it."""
    mine = {name for name, _ in this_run}
    keys = {marker.get("source_key") for _, marker in this_run}
    earlier = []
    try:
        folders = sorted((p for p in out_dir.iterdir() if p.is_dir() and p.name not in mine), key=lambda p: p.name)
    except OSError:
        folders = []
    for sdir in folders:
        marker = _finished(sdir, M, K, model_sha256, adapt, coarse, superpixels)
        if marker and marker.get("source_key") not in keys:
            keys.add(marker.get("source_key"))
            earlier.append((sdir.name, marker))
    return earlier + list(this_run)


def _load_state(out_dir: Path) -> List[Dict]:
    try:
        entries = json.loads((out_dir / FAILURES_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("input"), str)] \
        if isinstance(entries, list) else []


def study_failures(out_dir: Path, this_run: Sequence[Tuple[str, str]], attempted: Iterable[str],
                   finished: Set[str], M: int, K: int, model_sha256: str) -> List[Tuple[str, str]]:
    """(input, reason) rows for failures.csv: this run's failures, then earlier runs' failures with the
    same M, K and model whose input was neither tried again in this run nor is finished now.
    Updates OUT/.failures.json so that the next run sees this run's failures."""
    settings = {"M": M, "K": K, "model_sha256": model_sha256}
    retried = set(attempted) | {source for source, _ in this_run}
    kept = [e for e in _load_state(out_dir)
            if e["input"] not in finished and not (e["input"] in retried and _same(e, settings))]
    state = kept + [dict(settings, input=source, reason=reason) for source, reason in this_run]
    write_json(out_dir / FAILURES_STATE, state)
    earlier = [(e["input"], str(e.get("reason", ""))) for e in kept
               if _same(e, settings) and e["input"] not in retried]
    return list(this_run) + earlier


def _same(entry: Dict, settings: Dict) -> bool:
    return all(entry.get(k) == v for k, v in settings.items())
