"""`pancakes segment` on clinical-size CT-like volumes: wall time and peak RSS of the CLI process.

Targets (issue 15), at 512 x 512 x 400, M = 8, K = 20, the bundled model, this 2-core machine:
- wall time <= 60 s;
- peak RSS <= input + M uint8 label volumes + 1 GB (~2 GB here);
- RSS grows no faster than that sum from 100 to 1,000 slices.

Each size runs in a fresh process (`python -m pancakes.cli segment ...`); its peak RSS is the
child's own ru_maxrss from os.wait4, so the benchmark's memory is not counted. The machine is
shared: the load average before and after each run is printed with it.

Usage::

    python benchmarks/bench_large_volume.py [--slices 100 400 1000] [--model PATH] [-M 8] [-K 20]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20


def ct_like(depth: int, size: int = 512, seed: int = 0) -> sitk.Image:
    """int16 CT-like volume: air, a body ellipse with an organ and a spine that move along z, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:size, :size]
    vol = np.full((depth, size, size), -1000, np.int16)
    for z in range(depth):
        t = z / max(depth - 1, 1)
        body = ((yy - size / 2) / (0.40 * size)) ** 2 + ((xx - size / 2) / ((0.40 + 0.06 * t) * size)) ** 2 < 1
        organ = ((yy - 0.45 * size) / ((0.08 + 0.06 * t) * size)) ** 2 + ((xx - 0.6 * size) / (0.14 * size)) ** 2 < 1
        spine = ((yy - 0.75 * size) / (0.05 * size)) ** 2 + ((xx - size / 2) / (0.05 * size)) ** 2 < 1
        vol[z][body], vol[z][organ], vol[z][spine] = 40, 120, 700
    vol += rng.integers(-25, 26, size=(8, size, size), dtype=np.int16)[np.arange(depth) % 8]
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.7, 0.7, 1.25))
    return img


def run_cli(volume: Path, out: Path, M: int, K: int, model: str) -> tuple:
    """-> (wall s, peak RSS MiB, exit status) of one `pancakes segment` process."""
    cmd = [sys.executable, "-m", "pancakes.cli", "segment", str(volume), "-o", str(out), "-M", str(M),
           "-K", str(K), "-q", "--device", "cpu"] + (["--model", model] if model else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment"))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[100, 400, 1000])
    parser.add_argument("--model", default="", help="model file (default: the bundled model)")
    parser.add_argument("-M", type=int, default=8)
    parser.add_argument("-K", type=int, default=20)
    args = parser.parse_args()
    print(f"pancakes segment, 512 x 512 x D int16 CT-like, M={args.M}, K={args.K}, {os.cpu_count()} CPUs")
    print("| slices | input MiB | M labels MiB | sum MiB | wall s | peak RSS MiB | RSS - sum MiB | load before/after |")
    print("|---|---|---|---|---|---|---|---|")
    for depth in args.slices:
        with tempfile.TemporaryDirectory() as tmp:
            image = ct_like(depth)
            path = Path(tmp) / "ct.mha"
            sitk.WriteImage(image, str(path))
            del image
            input_mb = 512 * 512 * depth * 2 / MB
            labels_mb = args.M * 512 * 512 * depth / MB
            load_before = os.getloadavg()[0]
            wall, rss, rc = run_cli(path, Path(tmp) / "out", args.M, args.K, args.model)
            load_after = os.getloadavg()[0]
            total = input_mb + labels_mb
            status = "" if rc == 0 else f" (exit {rc})"
            print(f"| {depth} | {input_mb:.0f} | {labels_mb:.0f} | {total:.0f} | {wall:.1f}{status} | {rss:.0f} | "
                  f"{rss - total:.0f} | {load_before:.1f} / {load_after:.1f} |", flush=True)


if __name__ == "__main__":
    main()
