"""Seeded mutation fuzzer of the image readers behind `pancakes segment` (NIfTI, NRRD, MHA, DICOM).

Each case is a valid small file, mutated once: truncated, bytes flipped, huge / zero /
negative dimensions, absurd spacing or direction, another data type, or a header that
disagrees with the data. Every case must end in one of two ways: segmented, or the usual
one-line ``PancakesInputError``. Anything else is a defect: another exception (a traceback
in all but name), a signal (a native crash), a hang (over ``timeout`` seconds) or runaway
memory (RSS over ``rss_limit_mb``).

Cases run in a driver subprocess that loads the model once and takes case files one by one
on stdin, reporting on stdout; the parent watches it, and after a crash, hang or memory
overrun it records the case and starts a new driver for the rest.

Usage::

    results = run_cases(make_cases(folder, n=200, seed=0), model_path, workdir)
    defects = [r for r in results if r.outcome not in ("segmented", "error")]
    python Testing/Python/reader_fuzz.py --driver MODEL OUTDIR    # (what run_cases starts)
"""
from __future__ import annotations

import gzip
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("truncate", "flip", "dims", "spacing", "direction", "dtype", "disagree")
FORMATS = ("nii", "nii.gz", "nrrd", "nrrd.gz", "mha", "dcm")
SELF_TEST_CRASH, SELF_TEST_HANG = ".selftest-crash", ".selftest-hang"  # test_reader_fuzz checks the watchdog


@dataclass
class Case:
    path: str
    fmt: str
    kind: str
    note: str


@dataclass
class Result:
    case: Case
    outcome: str  # segmented | error | defect:exception | defect:signal | defect:hang | defect:memory
    detail: str
    seconds: float


# ---- valid seed files -------------------------------------------------------------------------

def _volume(rng: np.random.Generator, dtype=np.int16):
    import SimpleITK as sitk

    arr = rng.integers(0, 1000, (6, 20, 24)).astype(dtype)
    arr[:, 5:12, 6:15] += 500  # some structure, so the volume is not constant
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 0.8, 2.5))
    img.SetOrigin((10.0, -5.0, 3.0))
    img.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    return img


def seed_files(folder: Path, seed: int = 0) -> Dict[str, bytes]:
    """{format: bytes of a valid small file}. Compressed formats are returned uncompressed
    ('nii.gz' -> its .nii bytes, 'nrrd.gz' -> a raw-encoded header + data): mutations are made
    there and the file is compressed again, so header fields are reachable behind gzip."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    img = _volume(np.random.default_rng(seed))
    out = {}
    for fmt, name, compress in (("nii", "s.nii", False), ("nrrd", "s.nrrd", False), ("mha", "s.mha", False)):
        sitk.WriteImage(img, str(folder / name), compress)
        out[fmt] = (folder / name).read_bytes()
    out["nii.gz"] = out["nii"]
    out["nrrd.gz"] = out["nrrd"].replace(b"encoding: raw", b"encoding: gzip", 1)  # header only; data gzipped later
    sl = sitk.GetImageFromArray(sitk.GetArrayFromImage(img)[3])
    sl.SetSpacing((0.9, 0.8))
    for tag, value in (("0008|0060", "CT"), ("0010|0010", "Fuzz^Subject"), ("0020|0032", "10\\-5\\3"),
                       ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", "0.8\\0.9"), ("0018|0050", "2.5")):
        sl.SetMetaData(tag, value)
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(folder / "s.dcm"))
    writer.Execute(sl)
    out["dcm"] = (folder / "s.dcm").read_bytes()
    return out


# ---- mutations --------------------------------------------------------------------------------

HUGE = [0, -1, -32768, 32767, 65535, 2**31 - 1, 100000, 1 << 40]
ABSURD = [0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 3.4e38]


def _pick(rng: random.Random, values):
    return values[rng.randrange(len(values))]


def _text_field(data: bytes, pattern: bytes, make: Callable[[bytes], bytes]) -> bytes:
    """Replace the value of the first header line matching ``pattern`` (NRRD/MHA text headers)."""
    m = re.search(pattern + rb"[^\n]*", data)
    if not m:
        return data
    return data[: m.start()] + make(m.group(0)) + data[m.end():]


def _nifti(data: bytes, kind: str, rng: random.Random) -> bytes:
    b = bytearray(data)
    if kind == "dims":
        i = rng.randrange(0, 4)
        struct.pack_into("<h", b, 40 + 2 * i, max(-32768, min(32767, _pick(rng, HUGE))))
    elif kind == "spacing":
        struct.pack_into("<f", b, 76 + 4 * rng.randrange(1, 4), np.float32(_pick(rng, ABSURD)))
    elif kind == "direction":
        at = _pick(rng, [256, 260, 264, 268, 280, 284, 296, 312])  # quatern_b.., qoffset, srow
        struct.pack_into("<f", b, at, np.float32(_pick(rng, ABSURD)))
        struct.pack_into("<h", b, _pick(rng, [252, 254]), rng.choice([0, 1, 2, 3, 4, 99, -1]))
    elif kind == "dtype":
        struct.pack_into("<h", b, 70, _pick(rng, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280,
                                                  1536, 1792, 2048, 2304, 12345]))
        if rng.random() < 0.5:
            struct.pack_into("<h", b, 72, _pick(rng, [0, 1, 7, 8, 16, 64, 128, -8]))
    elif kind == "disagree":
        struct.pack_into("<f", b, 108, np.float32(_pick(rng, [0.0, 100.0, 351.0, 1e9, -352.0])))  # vox_offset
        if rng.random() < 0.5:
            struct.pack_into("<h", b, 40, rng.choice([0, 2, 4, 5, 8, -3]))  # dim[0]: number of dimensions
    return bytes(b)


def _nrrd_or_mha(data: bytes, fmt: str, kind: str, rng: random.Random) -> bytes:
    nrrd = fmt.startswith("nrrd")
    num = lambda: repr(_pick(rng, ABSURD)).encode()  # noqa: E731
    if kind == "dims":
        sizes = b" ".join(str(_pick(rng, HUGE + [6, 20])).encode() for _ in range(3))
        return _text_field(data, rb"sizes:" if nrrd else rb"DimSize =",
                           lambda _: (b"sizes: " if nrrd else b"DimSize = ") + sizes)
    if kind == "spacing":
        if nrrd:
            vec = lambda: b"(" + b",".join(num() for _ in range(3)) + b")"  # noqa: E731
            return _text_field(data, rb"space directions:", lambda _: b"space directions: " + b" ".join(
                vec() for _ in range(3)))
        return _text_field(data, rb"ElementSpacing =", lambda _: b"ElementSpacing = " + b" ".join(
            num() for _ in range(3)))
    if kind == "direction":
        if nrrd:
            return _text_field(data, rb"space directions:", lambda _: b"space directions: (1,0,0) (1,0,0) (0,0,0)"
                               if rng.random() < 0.5 else b"space directions: none none none")
        m = b" ".join(_pick(rng, [b"0", b"1", b"-1", b"nan", b"1e30"]) for _ in range(9))
        return _text_field(data, rb"TransformMatrix =", lambda _: b"TransformMatrix = " + m)
    if kind == "dtype":
        t = _pick(rng, [b"uchar", b"double", b"int64", b"block", b"float16", b"complex", b"unknown"]) if nrrd else \
            _pick(rng, [b"MET_UCHAR", b"MET_DOUBLE", b"MET_LONG_LONG", b"MET_FLOAT_ARRAY", b"MET_NONE", b"MET_BOGUS"])
        return _text_field(data, rb"type:" if nrrd else rb"ElementType =",
                           lambda _: (b"type: " if nrrd else b"ElementType = ") + t)
    if kind == "disagree":  # header and data no longer agree: more voxels, more components, other byte skip
        choice = rng.randrange(3)
        if choice == 0:
            return _text_field(data, rb"sizes:" if nrrd else rb"DimSize =",
                               lambda _: b"sizes: 6 40 24" if nrrd else b"DimSize = 24 40 6")
        if choice == 1:
            return _text_field(data, rb"dimension:" if nrrd else rb"NDims =",
                               lambda _: _pick(rng, [b"dimension: 4", b"dimension: 2", b"dimension: 0"]) if nrrd
                               else _pick(rng, [b"NDims = 4", b"NDims = 2", b"NDims = 0"]))
        return _text_field(data, rb"endian:" if nrrd else rb"ElementNumberOfChannels",
                           lambda _: b"byte skip: 100000" if nrrd else b"ElementNumberOfChannels = 7")
    return data


def _dicom_tag(data: bytes, group: int, element: int, value: bytes) -> bytes:
    """Set a little-endian element's value (implicit VR, as GDCM writes by default, or explicit VR with a
    short length), fixing its length (even-padded), so the file stays well formed around it."""
    key = struct.pack("<HH", group, element)
    at = data.find(key, 132)
    if at < 0 or at + 8 > len(data):
        return data
    if len(value) % 2:
        value += b" "
    if data[at + 4 : at + 6].isalpha() and data[at + 4 : at + 6].isupper():  # explicit VR, 2-byte length
        length = struct.unpack_from("<H", data, at + 6)[0]
        return data[: at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length:]
    length = struct.unpack_from("<I", data, at + 4)[0]
    return data[: at + 4] + struct.pack("<I", len(value)) + value + data[at + 8 + length:]


def _dicom(data: bytes, kind: str, rng: random.Random) -> bytes:
    u16 = lambda v: struct.pack("<H", v & 0xFFFF)  # noqa: E731
    if kind == "dims":
        return _dicom_tag(data, 0x0028, _pick(rng, [0x0010, 0x0011]), u16(_pick(rng, [0, 1, 65535, 4096, 21])))
    if kind == "spacing":
        value = "\\".join(repr(_pick(rng, ABSURD)) for _ in range(2))
        return _dicom_tag(data, 0x0028, 0x0030, value.encode())
    if kind == "direction":
        value = "\\".join(_pick(rng, ["0", "1", "-1", "nan", "1e30", "x"]) for _ in range(6))
        return _dicom_tag(data, 0x0020, 0x0037, value.encode())
    if kind == "dtype":
        return _dicom_tag(data, 0x0028, _pick(rng, [0x0100, 0x0101, 0x0103, 0x0002]),
                          u16(_pick(rng, [0, 1, 3, 7, 12, 32, 64, 255])))
    if kind == "disagree":  # pixel data length no longer what rows x columns x bits say
        key = struct.pack("<HH", 0x7FE0, 0x0010)
        at = data.rfind(key)
        if at >= 0:
            cut = rng.randrange(at + 8, len(data))
            return data[:cut] if rng.random() < 0.5 else data + bytes(rng.randrange(1, 5000))
    return data


def mutate(seed: bytes, fmt: str, kind: str, rng: random.Random) -> bytes:
    """One mutation of kind ``kind`` -> the bytes of the file to write (compressed formats compressed)."""
    data = seed
    if kind in ("dims", "spacing", "direction", "dtype", "disagree"):
        if fmt.startswith("nii"):
            data = _nifti(data, kind, rng)
        elif fmt == "dcm":
            data = _dicom(data, kind, rng)
        else:
            data = _nrrd_or_mha(data, fmt, kind, rng)
    if fmt == "nii.gz":
        data = gzip.compress(data, mtime=0)
    elif fmt == "nrrd.gz":
        head, _, body = data.partition(b"\n\n")
        data = head + b"\n\n" + gzip.compress(body, mtime=0)
    if kind == "truncate":
        data = data[: rng.randrange(0, max(1, len(data)))]
    elif kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        data = bytes(b)
    return data


def make_cases(folder: Path, n: int, seed: int = 0, formats: Sequence[str] = FORMATS) -> List[Case]:
    """``n`` mutated files in ``folder``, round robin over formats and kinds, reproducible from ``seed``."""
    folder = Path(folder)
    seeds = seed_files(folder / "seeds", seed)
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        fmt = formats[i % len(formats)]
        kind = KINDS[(i // len(formats)) % len(KINDS)]
        path = folder / f"case{i:05d}_{kind}.{fmt.replace('nrrd.gz', 'gz.nrrd')}"  # ITK goes by the extension
        path.write_bytes(mutate(seeds[fmt], fmt, kind, rng))
        cases.append(Case(str(path), fmt, kind, f"seed {seed} case {i}"))
    return cases


# ---- the driver (child process) ---------------------------------------------------------------

def driver(model_path: str, out_dir: str) -> None:
    """Read case paths on stdin; for each, print 'START i' then 'END i <outcome> <detail>' (one line)."""
    import shutil
    import traceback

    from pancakes import Pancakes
    from pancakes.batch import BatchOptions, process_subject
    from pancakes.errors import PancakesInputError
    from pancakes.io import find_subjects

    model = Pancakes.load(model_path, device="cpu")
    opts = BatchOptions(Path(out_dir), protocols=1, labels=2, progress=False, adapt=float(model.adapt))
    print("READY", flush=True)
    for i, line in enumerate(sys.stdin):
        path = line.rstrip("\n")
        print(f"START {i}", flush=True)
        outcome, detail = "segmented", ""
        if path.endswith(SELF_TEST_CRASH):  # the harness's own test: a native crash, as a reader could cause
            os.kill(os.getpid(), signal.SIGSEGV)
        if path.endswith(SELF_TEST_HANG):
            time.sleep(3600)
        try:
            subjects, problems = find_subjects([path])
            if problems:
                raise PancakesInputError(f"{problems[0][0]}: {problems[0][1]}")
            process_subject(model, subjects[0], opts, "fuzz")
        except PancakesInputError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            outcome, detail = ("error", lines[0]) if len(lines) == 1 else ("defect:exception", f"{len(lines)} lines")
        except Exception as exc:  # noqa: BLE001 - anything else reaches the user as a bug
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            outcome = "defect:exception"
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} " \
                     f"({os.path.basename(tb.filename)}:{tb.lineno})"
        shutil.rmtree(out_dir, ignore_errors=True)
        print(f"END {i} {outcome} {detail}".replace("\n", " "), flush=True)


# ---- the parent: watch the driver ---------------------------------------------------------------

def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _Driver:
    def __init__(self, model_path: str, workdir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment") + os.pathsep + str(Path(__file__).parent),
                   OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, __file__, "--driver", model_path, str(workdir / "out")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, text=True, bufsize=1)
        self.buffer = ""
        line = self.readline(120.0, None)
        if line != "READY":
            raise RuntimeError(f"fuzz driver did not start: {line!r}")

    def readline(self, timeout: float, rss_limit_mb: Optional[float]) -> Optional[str]:
        """The next line, 'TIMEOUT', 'MEMORY', or None when the driver died."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while "\n" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0:
                return "TIMEOUT"
            if rss_limit_mb is not None and _rss_mb(self.proc.pid) > rss_limit_mb:
                return "MEMORY"
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 65536).decode("utf-8", "replace")
                if not chunk:
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition("\n")
        return line

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_cases(cases: Sequence[Case], model_path: str, workdir: Path, timeout: float = 60.0,
              rss_limit_mb: float = 3000.0, log: Callable[[str], None] = lambda s: None) -> List[Result]:
    """Run every case through the driver; a crash, hang or memory overrun restarts it for the rest."""
    workdir = Path(workdir)
    results: List[Result] = []
    drv: Optional[_Driver] = None
    for case in cases:
        if drv is None or drv.proc.poll() is not None:
            drv = _Driver(str(model_path), workdir)
        start = time.monotonic()
        drv.proc.stdin.write(case.path + "\n")
        drv.proc.stdin.flush()
        line = drv.readline(timeout, None)  # START: the driver took it
        line = drv.readline(timeout, rss_limit_mb) if line and line.startswith("START") else line
        took = time.monotonic() - start
        if line and line.startswith("END "):
            _, _, outcome, *rest = line.split(" ", 3)
            result = Result(case, outcome, rest[0] if rest else "", took)
        else:
            drv.kill()
            code = drv.proc.returncode
            outcome = {"TIMEOUT": "defect:hang", "MEMORY": "defect:memory"}.get(line or "", "defect:signal")
            result = Result(case, outcome, f"exit {code}", took)
            drv = None
        results.append(result)
        log(f"{case.path}: {result.outcome} {result.detail} ({took:.1f} s)")
    if drv is not None:
        drv.proc.stdin.close()
        drv.kill()
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--driver":
        driver(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: reader_fuzz.py --driver MODEL OUTDIR (benchmarks/fuzz_readers.py runs the fuzzer)")
