"""The batch runner behind ``pancakes segment``: subjects in, segmentations and tables out.

Usage::

    subjects, problems = find_subjects(["study/"], exclude=["out"])
    opts = BatchOptions(Path("out"), protocols=8, labels=20, fmt="seg.nrrd", resume=True)
    result = run_batch(model, subjects, opts, model_sha256=file_sha256(model_path), problems=problems)

Layout of OUT::

    <subject>/<subject>_P01.seg.nrrd ...   one file per protocol (or .nii.gz, or .seg.dcm: dicom_seg.py)
    <subject>/.thumbnail.npz                middle slices for the gallery
    <subject>/.complete.json                written last: M, K, format, axis, model hash, counts
    <subject>/.in_progress.json             while it is segmented; left behind only by a process that died
    volumes.csv, gallery.png, failures.csv  rebuilt at the end from every complete subject in OUT
    run.json, report.html                   the run manifest (manifest.py) and the study report (report.py)
    .failures.json                          failures of every run, so that failures.csv covers earlier runs
    gallery_2.png, ...                      further gallery pages of large batches
    pancakes_M8_K20_colors.txt              with --format nifti

A subject is complete only once its marker exists, and every file is written
atomically, so an interrupted run leaves no partial file under a final name and
``--resume`` redoes exactly the subjects without a matching marker.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import json
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import SimpleITK as sitk
from tqdm import tqdm

from . import __version__, protocols
from .contract import Cancelled
from .errors import PancakesInputError
from .in_progress import CRASHED, crashed_before, mark_ended, mark_started
from .inputs import MARKER, Loaded, Subject, load_subject
from .render import load_thumbnail, make_thumbnail, save_thumbnail, write_gallery_pages
from .manifest import check_resume, run_record, run_settings, write_manifest
from .label_volumes import label_counts, volume_rows, voxel_volume_mm3, write_volumes_csv
from .segio import (FORMATS, PARTIAL, colour_table_path, output_path, write_colour_table, write_json,
                    write_nifti_labelmap, write_seg_nrrd, write_text)
from .study import THUMBNAIL, study_failures, study_subjects
Report = Callable[[str], None]


@dataclass
class BatchOptions:
    out_dir: Path
    protocols: int = 8
    labels: int = 20
    axis: str = "axial"
    fmt: str = "seg.nrrd"
    resume: bool = False
    batch_size: Optional[int] = None  # None: the device's default (devices.default_batch_size)
    progress: bool = True  # tqdm bars (shown only on a terminal)
    adapt: float = 0.0  # set by run_batch from the model: decode-time adaptation is part of what --resume matches
    coarse: bool = False  # set by run_batch from the model, like adapt: the last protocol merged (coarse_protocol.py)
    superpixels: bool = False  # set by run_batch from the model, like adapt: boundaries pooled (superpixel_pooling.py)
    retry_crashed: bool = False  # segment again the subjects an earlier process died in (in_progress.py)
    model_path: Optional[str] = None  # recorded in run.json
    argv: Optional[List[str]] = None  # the command line recorded in run.json (None: sys.argv)


@dataclass
class BatchResult:
    completed: List[str] = field(default_factory=list)  # subjects segmented in this run
    skipped: List[str] = field(default_factory=list)  # complete from an earlier run (--resume)
    failures: List[Tuple[str, str]] = field(default_factory=list)  # (input, reason)


def reserved_names(M: int, K: int) -> List[str]:
    """Top-level output names a subject folder must not take."""
    return ["volumes.csv", "gallery.png", "failures.csv", "run.json", "report.html", colour_table_path(".", M, K).name]


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


def one_line(exc: BaseException, source: str) -> str:
    """The reason part of 'pancakes: <input>: <reason>' for any exception."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if isinstance(exc, PancakesInputError):
        return msg[len(source) + 2:] if msg.startswith(source + ": ") else msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _marker_expected(subject: Subject, opts: BatchOptions, model_sha256: str) -> Dict:
    return {"source_key": subject.key, "source_stamp": subject.stamp(), "M": opts.protocols, "K": opts.labels,
            "format": opts.fmt, "axis": opts.axis, "model_sha256": model_sha256, "adapt": opts.adapt, "coarse": opts.coarse,
            "superpixels": opts.superpixels,
            "label_scheme": protocols.SCHEME}


def read_marker(out_dir: Path, subject: Subject, opts: BatchOptions, model_sha256: str) -> Optional[Dict]:
    """The subject's completion marker when it matches this run and its files exist, else None."""
    sdir = out_dir / subject.name
    try:
        marker = json.loads((sdir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    expected = _marker_expected(subject, opts, model_sha256)
    if any(marker.get(k) != v for k, v in expected.items()):
        return None
    needed = [sdir / f for f in marker.get("files", [])] + [sdir / THUMBNAIL]
    return marker if all(p.is_file() for p in needed) else None


def _clear(sdir: Path) -> None:
    """Forget an earlier run of this subject: marker first, then leftover temp files."""
    (sdir / MARKER).unlink(missing_ok=True)
    for tmp in sdir.glob(f".*{PARTIAL}*"):
        tmp.unlink(missing_ok=True)


class _SliceBar:
    """Inner tqdm bar over slices, re-labelled per phase (encode, decode)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = tqdm(total=0, unit="slice", leave=False, position=1, disable=None if enabled else True)
        self.label = ""

    def phase(self, label: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            if self.label != label or self.bar.total != total:
                self.label = label
                self.bar.reset(total=total)
                self.bar.set_description_str(label, refresh=False)
            self.bar.update(done - self.bar.n)
        return update

    def close(self) -> None:
        self.bar.close()


def segment_loaded(model, loaded: Loaded, opts: BatchOptions, name: str,
                   bar: Optional[_SliceBar] = None) -> List[sitk.Image]:
    """M uint8 label volumes (values 1..K) with the geometry of ``loaded.volume``.

    Streamed (encode, decode, discard per batch of slices): a batch never browses other protocols,
    so caching ~1 MB of features per slice (400 MB for a 400-slice CT) would buy nothing. A 2D image
    (``loaded.plane_axis`` set) is segmented in its own plane, whatever --axis says: the predictor
    (pancakes.predictor) handles it.
    """
    predictor = model.predictor(loaded.volume, opts.axis, name, loaded.plane_axis, opts.batch_size)
    return predictor.segment(opts.protocols, opts.labels, progress=bar.phase("segment") if bar else None)


def _remove_stale_protocols(sdir: Path, name: str, fmt: str, written: Sequence[str]) -> None:
    """Delete <name>_Pnn files of this format left by an earlier run with more protocols: beside the
    new P01..PM they read as protocols of this run. The other format's files are a whole other run, kept."""
    suffix = FORMATS[fmt]
    pattern = re.compile(re.escape(name) + r"_P\d{2}" + re.escape(suffix))
    for path in sdir.iterdir():
        if pattern.fullmatch(path.name) and path.name not in written:
            path.unlink(missing_ok=True)


def process_subject(model, subject: Subject, opts: BatchOptions, model_sha256: str,
                    bar: Optional[_SliceBar] = None) -> Dict:
    """Segment one subject and write all its outputs; the marker comes last. -> marker."""
    sdir = opts.out_dir / subject.name
    if sdir.is_dir():
        _clear(sdir)
    if opts.fmt == "dicom-seg" and not subject.series_uid:  # before any work: nothing to reference
        raise PancakesInputError(f"{subject.source}: --format dicom-seg needs a DICOM series as input")
    expected = _marker_expected(subject, opts, model_sha256)  # before reading: the stamp of what was read
    mark_started(sdir, subject)
    started = time.perf_counter()
    try:
        marker = _segment_and_write(model, subject, opts, expected, bar, started)
    finally:  # any exit Python sees; only a process that dies leaves the record behind
        mark_ended(sdir)
    return marker


def _writer(model, subject: Subject, opts: BatchOptions, model_sha256: str) -> Callable:
    """(path, labels, M, K, m) -> path for this run's format."""
    if opts.fmt == "dicom-seg":
        from .dicom_seg import algorithm_identification, write_dicom_seg

        algorithm = algorithm_identification(model_version(getattr(model, "metadata", {})), model_sha256)
        return lambda path, lab, M, K, m: write_dicom_seg(path, lab, subject.files, M, K, m, algorithm)
    return write_seg_nrrd if opts.fmt == "seg.nrrd" else write_nifti_labelmap


def model_version(metadata: Dict) -> str:
    """What a model file calls its version: 'version' when its metadata has one, else its format version."""
    return str(metadata.get("version", metadata.get("format_version", "unknown")))


def _segment_and_write(model, subject: Subject, opts: BatchOptions, expected: Dict,
                       bar: Optional[_SliceBar], started: float) -> Dict:
    M, K = opts.protocols, opts.labels
    sdir = opts.out_dir / subject.name
    loaded = load_subject(subject)
    labels = segment_loaded(model, loaded, opts, subject.source, bar)
    # The thumbnail (a middle slice) and the geometry first, so that the input volume can go before the
    # label volumes are written, and each label volume as soon as it is: the peak memory of a CT stays
    # at input + labels, not input + labels + the writers' copies.
    save_thumbnail(sdir / THUMBNAIL, make_thumbnail(loaded.volume, labels, opts.axis, loaded.plane_axis))
    volume = loaded.volume
    geometry = dict(size=list(volume.GetSize()), spacing=list(volume.GetSpacing()), voxel_mm3=voxel_volume_mm3(volume))
    del loaded, volume
    files, counts = [], []
    writer = _writer(model, subject, opts, expected["model_sha256"])
    for m in range(M):
        lab = labels[m]
        labels[m] = None
        path = output_path(opts.out_dir, subject.name, m, opts.fmt)
        writer(path, lab, M, K, m)
        files.append(path.name)
        counts.append(label_counts(lab, K))
        del lab
    _remove_stale_protocols(sdir, subject.name, opts.fmt, files)
    marker = dict(expected, subject=subject.name, source=subject.source, files=files, **geometry,
                  counts=counts, pancakes_version=__version__, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  seconds=round(time.perf_counter() - started, 3))
    write_json(sdir / MARKER, marker)
    return marker


def failures_csv_text(failures: Sequence[Tuple[str, str]]) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["input", "reason"])
    w.writerows(failures)
    return buf.getvalue()


def write_summaries(opts: BatchOptions, done: Sequence[Tuple[str, Dict]], failures: Sequence[Tuple[str, str]],
                    model_sha256: str = "", attempted: Sequence[str] = ()) -> Tuple[List, List]:
    """volumes.csv, gallery.png, failures.csv (and the colour table) from every complete subject in OUT
    with these settings (``done``, this run's, plus earlier runs'), and every failure not since fixed.
    -> (study-level done, study-level failures), which run.json and report.html list."""
    M, K, out = opts.protocols, opts.labels, opts.out_dir
    done = study_subjects(out, done, M, K, model_sha256, opts.adapt, opts.coarse, opts.superpixels)
    failures = study_failures(out, failures, attempted, {marker.get("source") for _, marker in done},
                              M, K, model_sha256)
    rows = [r for name, marker in done for r in volume_rows(name, marker["counts"], marker["voxel_mm3"], M, K)]
    write_volumes_csv(out / "volumes.csv", rows)
    write_text(out / "failures.csv", failures_csv_text(failures))
    if opts.fmt == "nifti":
        write_colour_table(colour_table_path(out, M, K), M, K)
    write_gallery_pages(out, [name for name, _ in done], lambda name: load_thumbnail(out / name / THUMBNAIL), M, K)
    return done, failures


def write_run_record(model, opts: BatchOptions, model_sha256: str, started: str, done: Sequence[Tuple[str, Dict]],
                     failures: Sequence[Tuple[str, str]]) -> None:
    """OUT/run.json (manifest.py), then OUT/report.html (report.py), which shows it."""
    from .report import write_report

    meta = getattr(model, "metadata", {}) or {}
    model_info = {"file": opts.model_path, "sha256": model_sha256, "version": model_version(meta),
                  "format_version": meta.get("format_version"), "kind": meta.get("kind"),
                  "trained": (meta.get("training") or {}).get("trained")}
    settings = run_settings(opts.protocols, opts.labels, opts.fmt, opts.axis, opts.adapt, model_sha256, opts.coarse,
                            opts.superpixels)
    manifest = write_manifest(opts.out_dir, settings, model_info, run_record(model, started, opts.argv), done)
    write_report(opts.out_dir, done, failures, manifest, opts.protocols, opts.labels)


def run_batch(model, subjects: Sequence[Subject], opts: BatchOptions, model_sha256: str,
              problems: Sequence[Tuple[str, str]] = (), report: Report = _stderr) -> BatchResult:
    """Segment every subject; a failing one is reported in one line and the rest carry on."""
    if opts.fmt not in FORMATS:
        raise PancakesInputError(f"format {opts.fmt!r}: use one of {', '.join(FORMATS)}")
    opts = replace(opts, adapt=float(getattr(model, "adapt", 0.0)), coarse=bool(getattr(model, "coarse", False)),
                   superpixels=bool(getattr(model, "superpixels", False)))
    if opts.resume:  # before any work: a refused run must leave OUT as it was
        check_resume(opts.out_dir, run_settings(opts.protocols, opts.labels, opts.fmt, opts.axis, opts.adapt,
                                                model_sha256, opts.coarse, opts.superpixels))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(failures=list(problems))
    for source, reason in problems:
        report(f"pancakes: {source}: {reason}")
    done: List[Tuple[str, Dict]] = []
    show = opts.progress
    outer = tqdm(subjects, unit="subject", desc="pancakes", position=0, disable=None if show else True)
    bar = _SliceBar(show)
    try:
        for subject in outer:
            outer.set_postfix_str(subject.name[:30], refresh=True)
            marker = read_marker(opts.out_dir, subject, opts, model_sha256) if opts.resume else None
            if marker is not None:
                result.skipped.append(subject.name)
                done.append((subject.name, marker))
                continue
            if not opts.retry_crashed and crashed_before(opts.out_dir / subject.name, subject):
                result.failures.append((subject.source, CRASHED))
                report(f"pancakes: {subject.source}: {CRASHED}")
                continue
            try:
                marker = process_subject(model, subject, opts, model_sha256, bar)
            except Cancelled:
                raise
            except Exception as exc:  # one bad input must not stop the batch
                reason = one_line(exc, subject.source)
                result.failures.append((subject.source, reason))
                report(f"pancakes: {subject.source}: {reason}")
                continue
            result.completed.append(subject.name)
            done.append((subject.name, marker))
    finally:
        bar.close()
        outer.close()
    done, failures = write_summaries(opts, done, result.failures, model_sha256,
                                     [s.source for s in subjects] + [source for source, _ in problems])
    write_run_record(model, opts, model_sha256, started, done, failures)
    return result
