"""Command line: ``pancakes segment`` (batch) and ``pancakes info`` (model metadata).

Usage::

    pancakes segment study/ more.nii.gz -o out --protocols 8 --labels 20 --format seg.nrrd
    pancakes segment --sample -o out            # the bundled sample collection
    pancakes segment study/ -o out --resume     # finish an interrupted batch
    pancakes segment study/ -o /shared/out --scheduler tcp://head:8786   # on a Dask cluster
    pancakes segment study/ -o out --workers 2  # a local cluster of 2 worker processes
    pancakes info [--model PATH] [--json]

Exit codes: 0 all inputs segmented, 1 some inputs failed (listed in
OUT/failures.csv), 2 bad arguments, no usable model, or --resume into an OUT
whose run.json holds other settings, 3 the Dask scheduler was lost during
the run, 130 interrupted, 141 the reader of stdout closed the pipe (quietly,
like other tools).
Errors are single lines on stderr: ``pancakes: <input>: <reason>``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from . import __version__
from .contract import (AXES, DEFAULT_ADAPT, DEFAULT_AXIS, DEFAULT_COARSE, DEFAULT_DEVICE, DEFAULT_LABELS,
                       DEFAULT_PROTOCOLS, DEFAULT_SUPERPIXELS, DEVICES, FORMATS, check_adapt, check_mk)
from .errors import ModelFileError, PancakesInputError

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_SCHEDULER_LOST, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pancakes", description="Pancakes: consistent multi-protocol "
                                     "segmentation of image collections (2D images and 3D volumes).")
    parser.add_argument("--version", action="version", version=f"pancakes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seg = sub.add_parser("segment", help="segment images, volumes, DICOM series or study folders",
                         description="Segment every input with M protocols of K labels each. Label k of "
                         "protocol m has the same ID, name and colour in every output.")
    seg.add_argument("inputs", nargs="*", metavar="INPUT",
                     help="image files (.nii/.nii.gz/.nrrd/.mha/.mhd/.png/.tif/.jpg), DICOM series folders "
                     "or study folders (searched recursively)")
    seg.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    seg.add_argument("--protocols", "-M", type=int, default=DEFAULT_PROTOCOLS, metavar="M",
                     help=f"protocols per input (default {DEFAULT_PROTOCOLS})")
    seg.add_argument("--labels", "-K", type=int, default=DEFAULT_LABELS, metavar="K",
                     help=f"labels per protocol (default {DEFAULT_LABELS})")
    seg.add_argument("--device", default=DEFAULT_DEVICE, choices=list(DEVICES), help=f"default: {DEFAULT_DEVICE}")
    seg.add_argument("--axis", default=DEFAULT_AXIS, choices=list(AXES),
                     help=f"slicing direction for 3D volumes (default {DEFAULT_AXIS})")
    seg.add_argument("--format", dest="fmt", default="seg.nrrd", choices=list(FORMATS),
                     help="Slicer segmentation per protocol, NIfTI labelmap + colour table, or DICOM SEG "
                     "(DICOM series inputs only) (default seg.nrrd)")
    seg.add_argument("--resume", action="store_true", help="skip inputs already complete in OUT with the same "
                     "M, K, format, axis and model; refused (exit 2) if OUT/run.json records other settings")
    seg.add_argument("--retry-crashed", action="store_true", help="segment again the inputs that an earlier "
                     "run died in (a native crash or out of memory); without it they are listed in "
                     "failures.csv and skipped")
    seg.add_argument("--model", type=Path, metavar="PATH", help="model file (default: the bundled model)")
    seg.add_argument("--sample", action="store_true", help="also segment the bundled sample collection")
    seg.add_argument("--batch-size", type=int, default=None, metavar="N",
                     help="slices per forward pass (default 4 on CPU, 32 on GPU)")
    seg.add_argument("--adapt", type=float, default=None, metavar="S",
                     help="strength of the per-image prototype adaptation at decode time; 0 turns it off "
                     "(default 1, see the model card)")
    seg.add_argument("--coarse", type=int, choices=[0, 1], default=None,
                     help="1: the last protocol is merged into two labels, figure and ground (default); "
                     "0: every protocol fine (see the model card, 'The coarse protocol')")
    seg.add_argument("--superpixels", type=int, choices=[0, 1], default=None,
                     help="1: label boundaries follow each image's edges, by pooling within superpixels (default); "
                     "0: as the network draws them, about twice as fast to decode on CPU (see the model card, "
                     "'Superpixel pooling')")
    seg.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    where = seg.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run the subjects as tasks on a Dask cluster: "
                       "tcp://host:port or a scheduler file; every worker must see INPUT and OUT "
                       "(needs pip install -e \".[cluster]\")")
    where.add_argument("--workers", type=int, metavar="N", help="run the subjects on a local Dask cluster "
                       "of N worker processes")
    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("--model", type=Path, metavar="PATH", help="model file (default: the bundled model)")
    info.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    return parser


def _error(message: str) -> None:
    print(f"pancakes: {message}", file=sys.stderr)


def _model_path(path: Optional[Path], adapt: Optional[float] = None) -> Path:
    """The model file to use, its metadata checked without torch (model_metadata.py); raises
    ModelFileError / PancakesInputError (one line each) for it or for --adapt."""
    from .bundled import bundled_model_path
    from .model_metadata import read_metadata

    try:
        check_adapt(DEFAULT_ADAPT if adapt is None else adapt)
    except PancakesInputError:
        raise PancakesInputError(f"--adapt {adapt}: must be a finite number >= 0") from None
    if path is None:
        try:
            path = bundled_model_path()
        except ModelFileError as exc:  # the engine's text speaks to Python callers
            raise ModelFileError(str(exc).replace("; pass path=", "; pass --model PATH")) from None
    read_metadata(path)
    return Path(path)


def _load_model(path: Optional[Path], device: str, adapt: Optional[float] = None, coarse: Optional[int] = None,
                superpixels: Optional[int] = None):
    """-> (model, path) or raise ModelFileError / PancakesInputError (one line each)."""
    from .engine import Pancakes

    path = _model_path(path, adapt)
    return Pancakes.load(path, device=device, adapt=DEFAULT_ADAPT if adapt is None else adapt,
                         coarse=_coarse(coarse), superpixels=_superpixels(superpixels)), path


def _superpixels(value: Optional[int]) -> bool:
    """--superpixels as given, or the engine's default."""
    return bool(DEFAULT_SUPERPIXELS if value is None else value)


def _coarse(value: Optional[int]) -> bool:
    """--coarse as given, or the engine's default."""
    return bool(DEFAULT_COARSE if value is None else value)


def _writable_output(out: Path) -> None:
    """Create OUT and prove it writable up front: otherwise every subject would fail
    one by one and the summaries at the end would stop with a traceback."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise PancakesInputError(f"{out}: cannot write the output folder: {exc.strerror or exc}") from None


def cmd_segment(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, file_sha256, reserved_names, run_batch
    from .inputs import find_subjects, sample_data_dir
    from .out_names import keep_other_results, occupied_names

    if args.batch_size is not None and args.batch_size < 1:
        _error(f"--batch-size {args.batch_size}: must be at least 1")
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        _error(f"--workers {args.workers}: must be at least 1")
        return EXIT_USAGE
    on_cluster = args.scheduler is not None or args.workers is not None
    try:
        M, K = check_mk(args.protocols, args.labels)
        inputs: List[str] = list(args.inputs) + ([str(sample_data_dir())] if args.sample else [])
        if not inputs:
            raise PancakesInputError("no INPUT given; pass image files or folders, or --sample")
        if args.output.exists() and not args.output.is_dir():
            raise PancakesInputError(f"{args.output}: output exists and is not a folder")
        if on_cluster:
            from .cluster import import_distributed

            import_distributed()  # the install hint before anything slow
        if on_cluster:  # the workers load the network; the client only checks the file (no torch)
            model, model_path = None, _model_path(args.model, args.adapt)
        else:
            model, model_path = _load_model(args.model, args.device, args.adapt, args.coarse, args.superpixels)
        _writable_output(args.output)
    except (PancakesInputError, ModelFileError) as exc:
        _error(str(exc).splitlines()[0])
        return EXIT_USAGE

    def scan():
        reserved = reserved_names(M, K) + occupied_names(str(args.output))
        subjects, problems = find_subjects(inputs, exclude=[str(args.output)], reserved=reserved)
        subjects, renamed = keep_other_results(subjects, str(args.output), reserved)
        for source, note in renamed:
            print(f"pancakes: {source}: {note}", file=sys.stderr)
        return subjects, problems

    opts = BatchOptions(args.output, M, K, args.axis, args.fmt, args.resume, args.batch_size, not args.quiet,
                        retry_crashed=args.retry_crashed, model_path=str(Path(model_path).resolve()),
                        argv=getattr(args, "argv", None))
    try:
        if on_cluster:
            result = _run_on_cluster(args, model_path, scan, opts)
            if result is None:
                return EXIT_USAGE
        else:
            subjects, problems = scan()
            result = run_batch(model, subjects, opts, file_sha256(model_path), problems)
    except PancakesInputError as exc:  # refused up front (--resume into another run's OUT): nothing was done
        _error(str(exc).splitlines()[0])
        return EXIT_USAGE
    parts = [f"{len(result.completed)} segmented"]
    if result.skipped:
        parts.append(f"{len(result.skipped)} already complete")
    if result.failures:
        parts.append(f"{len(result.failures)} failed (see {args.output / 'failures.csv'})")
    print(f"pancakes: {', '.join(parts)}; results in {args.output}", file=sys.stderr)
    return EXIT_FAILURES if result.failures else EXIT_OK


def _run_on_cluster(args, model_path: Path, scan: Callable[[], Tuple[List, List]], opts):
    """The study on a Dask cluster (cluster_batch); None after a one-line refusal (no scheduler, a
    worker that does not see OUT or cannot load the model)."""
    from .batch import file_sha256
    from .cluster import connect
    from .cluster_batch import run_cluster_batch, start_model_load
    from .cluster_worker import ModelSpec

    adapt = DEFAULT_ADAPT if args.adapt is None else float(args.adapt)
    spec = ModelSpec(os.path.abspath(model_path), file_sha256(model_path), args.device, adapt, _coarse(args.coarse),
                     _superpixels(args.superpixels))
    try:
        connection = connect(args.scheduler, args.workers)
        with connection as client:
            loading = start_model_load(client, spec)  # a worker loads the model while the client scans
            subjects, problems = scan()
            return run_cluster_batch(client, subjects, opts, spec, problems, loading=loading,
                                     release=connection.release_finished)
    except (PancakesInputError, ModelFileError) as exc:
        _error(str(exc).splitlines()[0])
        return None


def cmd_info(args: argparse.Namespace) -> int:
    from .batch import file_sha256
    from .model_metadata import read_metadata

    # The metadata only, read from the archive: no torch network is built, so the refiner's file
    # (kind "refine") is shown as it is, without the protocol engine's warnings about what it lacks.
    try:
        path = _model_path(args.model)
        meta = read_metadata(path)
    except (PancakesInputError, ModelFileError) as exc:
        _error(str(exc).splitlines()[0])
        return EXIT_USAGE
    if args.json:
        print(json.dumps(meta, indent=2, ensure_ascii=False))
        return EXIT_OK
    first = ("format_version", "kind", "input_size", "input_channels", "head", "parameters")
    rest = sorted(k for k in meta if k not in set(first) | {"training"})
    rows = [("model", str(path)), ("sha256", file_sha256(path))]
    rows += [(key, str(meta[key])) for key in first if key in meta]
    rows += [(key, json.dumps(meta[key], ensure_ascii=False)) for key in rest]
    # One column for the values, wide enough for the longest key (exported_with_torch is 19 letters).
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        print(f"{key + ':':<{width}}{value}")
    print("training:")
    for key, value in (meta.get("training") or {}).items():
        print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    args.argv = ["pancakes"] + [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # for run.json
    try:
        code = cmd_segment(args) if args.command == "segment" else cmd_info(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except KeyboardInterrupt:
        _error("interrupted; finished subjects are kept, rerun with --resume to do the rest")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`pancakes info --json | head`): stop quietly, as other tools do. Point
        # stdout at /dev/null, or the interpreter's own flush at exit prints the error after all.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # after BrokenPipeError, which is an Exception too
        from .cluster import SchedulerLost

        if not isinstance(exc, SchedulerLost):
            raise
        where = f" at {args.scheduler}" if getattr(args, "scheduler", None) else ""
        _error(f"lost the Dask scheduler{where}; finished subjects are kept, rerun with --resume to do the rest")
        return EXIT_SCHEDULER_LOST


if __name__ == "__main__":
    sys.exit(main())
