"""Subjects per minute of ``pancakes segment`` in-process, with ``--workers 1`` and with ``--workers 2``.

Two studies: the bundled sample (4 small subjects) and N CT-sized volumes (512 x 512 x D int16, generated
like bench_large_volume.py's). Each run is a fresh CLI process into a fresh OUT, so the figures include
everything a user waits for: importing torch, loading the model, starting the local cluster (its
workers import torch and load the model too), and writing the study-level files. The machine is shared:
the load average before and after each run is printed with it.

Target (issue 18): the cluster path costs at most 10 % over in-process at 1 worker.

Usage::

    python benchmarks/bench_cluster.py [--ct 8] [--slices 24] [--repeats 1] [-M 8] [-K 20]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_large_volume import ct_like  # noqa: E402

MODES = {"in-process": [], "--workers 1": ["--workers", "1"], "--workers 2": ["--workers", "2"]}


def run_once(inputs, out: Path, extra, M: int, K: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "PancakesSegment"))
    cmd = [sys.executable, "-m", "pancakes.cli", "segment", *inputs, "-o", str(out), "-M", str(M), "-K", str(K),
           "-q", "--device", "cpu", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=int, default=8, help="CT-sized volumes (default 8)")
    parser.add_argument("--slices", type=int, default=24, help="slices per CT-sized volume (default 24)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; the best is shown")
    parser.add_argument("-M", type=int, default=8)
    parser.add_argument("-K", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        tmp = Path(tmp)
        ct_dir = tmp / "ct"
        ct_dir.mkdir()
        for i in range(args.ct):
            sitk.WriteImage(ct_like(args.slices, seed=i), str(ct_dir / f"ct{i}.nii.gz"))
        studies = {"bundled sample (4 subjects)": (["--sample"], 4),
                   f"{args.ct} CT-sized 512x512x{args.slices}": ([str(ct_dir)], args.ct)}
        print(f"cores: {os.cpu_count()}, M={args.M}, K={args.K}, best of {args.repeats}")
        best = {(study, mode): (float("inf"), "") for study in studies for mode in MODES}
        for _ in range(args.repeats):  # modes interleaved, so that a change of load hits them alike
            for study, (inputs, n) in studies.items():
                for mode, extra in MODES.items():
                    before = os.getloadavg()[0]
                    wall = run_once(inputs, tmp / f"out_{len(os.listdir(tmp))}", extra, args.M, args.K)
                    if wall < best[study, mode][0]:
                        best[study, mode] = (wall, f"{before:.2f} -> {os.getloadavg()[0]:.2f}")
                    print(f"  {study}, {mode}: {wall:.1f} s", file=sys.stderr, flush=True)
        print("| study | mode | wall s | subjects/min | vs in-process | load before -> after |")
        print("|---|---|---|---|---|---|")
        for study, (inputs, n) in studies.items():
            base = best[study, "in-process"][0]
            for mode in MODES:
                wall, loads = best[study, mode]
                rel = "" if mode == "in-process" else f"{(wall / base - 1) * 100:+.1f} %"
                print(f"| {study} | {mode} | {wall:.1f} | {n / wall * 60:.1f} | {rel} | {loads} |", flush=True)

if __name__ == "__main__":
    main()
