"""OUT/run.json: what produced the results in OUT, and the guard that keeps --resume from mixing runs.

It records the project and model versions, the model file's SHA-256, the settings that
change a segmentation (M, K, format, axis, adapt, coarse protocol, superpixel pooling, label scheme), the device, torch version
and command line of every run that added to OUT, and per subject the input's fingerprint
(files, bytes, newest mtime, as the completion markers hold it) and the seconds it took.
Written atomically after each run, from every finished subject in OUT with these settings.

Usage::

    settings = run_settings(M=8, K=20, fmt="seg.nrrd", axis="axial", adapt=1.0, model_sha256=sha, coarse=True,
                            superpixels=True)
    check_resume(out, settings)         # PancakesInputError (one line) if OUT holds another run's settings
    write_manifest(out, settings, model, run_record(model, started), done)
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import __version__, protocols
from .errors import PancakesInputError
from .segio import write_json

MANIFEST = "run.json"
PROJECT = "PancakesSegment"
# What --resume must find unchanged: any of these changes what a finished subject's files contain.
SETTINGS = ("M", "K", "format", "axis", "adapt", "coarse", "superpixels", "model_sha256", "label_scheme")


def run_settings(M: int, K: int, fmt: str, axis: str, adapt: float, model_sha256: str, coarse: bool,
                 superpixels: bool) -> Dict:
    return {"M": M, "K": K, "format": fmt, "axis": axis, "adapt": float(adapt), "coarse": bool(coarse),
            "superpixels": bool(superpixels),
            "model_sha256": model_sha256, "label_scheme": protocols.SCHEME}


def read_manifest(out_dir: Path) -> Optional[Dict]:
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("settings"), dict) else None


def settings_differences(old: Dict, new: Dict) -> List[str]:
    """['M 8 -> 2', ...] for every setting that differs (a missing one counts as different)."""
    return [f"{key} {old.get(key, 'unset')} -> {new[key]}" for key in SETTINGS if old.get(key) != new.get(key)]


def check_resume(out_dir: Path, settings: Dict) -> None:
    """Refuse --resume into an OUT whose run.json was written with other settings.

    Without the guard a resumed run redoes the subjects whose markers do not match and leaves the
    others, so OUT would hold two kinds of results side by side. An OUT without run.json (older
    versions) is let through: the per-subject markers still decide what is redone."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return
    diff = settings_differences(manifest["settings"], settings)
    if diff:
        raise PancakesInputError(f"{Path(out_dir) / MANIFEST}: --resume refused, OUT was made with other settings "
                                 f"({', '.join(diff)}); use another output folder or drop --resume")


def run_record(model, started: str, argv: Optional[Sequence[str]] = None) -> Dict:
    """One run's device, torch version, command line and start time."""
    # A cluster client names its workers' torch (cluster_worker.ModelInfo); in-process, torch came with the
    # model, and it is not imported here for torch-free callers.
    torch_version = getattr(model, "torch_version", None) or getattr(sys.modules.get("torch"), "__version__", None)
    argv = list(sys.argv if argv is None else argv)
    return {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(shlex.quote(a) for a in argv), "argv": argv,
            "device": str(getattr(model, "device", "unknown")),
            "torch_version": torch_version, "python": sys.version.split()[0],
            "pancakes_version": __version__}


def _subject_entry(name: str, marker: Dict) -> Dict:
    stamp = marker.get("source_stamp") or [None, None, None]
    series_uid = str(marker.get("source_key", "")).partition("#")[2] or None
    return {"subject": name, "input": marker.get("source"), "series_uid": series_uid,
            "fingerprint": {"files": stamp[0], "bytes": stamp[1], "mtime_ns": stamp[2]},
            "seconds": marker.get("seconds"), "finished": marker.get("finished"), "files": marker.get("files", []),
            # The study tables pool subjects of every format and axis with the same M, K, model and adapt
            # (study.py), so each subject says which it was made with.
            "format": marker.get("format"), "axis": marker.get("axis")}


def build_manifest(out_dir: Path, settings: Dict, model_info: Dict, run: Dict,
                   done: Sequence[Tuple[str, Dict]]) -> Dict:
    """The manifest for OUT: earlier runs with the same settings are kept in ``runs``, this one appended."""
    old = read_manifest(out_dir)
    runs = list(old.get("runs", [])) if old and not settings_differences(old["settings"], settings) else []
    return {"project": PROJECT, "pancakes_version": __version__, "model": model_info, "settings": settings,
            "runs": runs + [run], "subjects": [_subject_entry(name, marker) for name, marker in done]}


def write_manifest(out_dir: Path, settings: Dict, model_info: Dict, run: Dict,
                   done: Sequence[Tuple[str, Dict]]) -> Dict:
    manifest = build_manifest(out_dir, settings, model_info, run, done)
    write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest
