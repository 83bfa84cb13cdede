"""Inference benchmark: run side by side in one process, prints Markdown tables.

    python benchmarks/bench_inference.py [--model model_weights/pancakes.pt] [--quick]

1. per-image inference at M=8, K=20, 128x128: shipped (dot-product) head, with and
   without decode-time adaptation and the coarse last protocol, vs the paper-faithful head (three 3x3 convs on
   phi || v per (m, k));
2. slices per second and wall time for a 256x256x200 volume;
3. peak resident memory as the volume grows (each size in a fresh subprocess);
4. the cost of switching protocol and of changing K on cached features (each slice's superpixels
   cached with them), and of a switch that segments the superpixels again.
Speed does not depend on the weights, so the faithful head runs with random ones.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pancakes import Pancakes
from pancakes.engine import bundled_model_path
from pancakes.model_file import default_metadata, save_torchscript
from pancakes.modeling import PancakesNet
from pancakes.superpixel_pooling import RegionCache


def timed(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` wall times (s) after one warm-up: the machine is shared and noisy."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def volume(shape_zyx):
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    img = sitk.GetImageFromArray(rng.random(shape_zyx, dtype=np.float32))
    img.SetSpacing((0.8, 0.8, 1.5))
    return img


def per_image(model_path: Path, n: int = 16) -> list:
    rows = []
    imgs = [np.random.default_rng(i).random((128, 128)).astype(np.float32) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        faithful = PancakesNet(head="faithful")
        fpath = save_torchscript(faithful, Path(tmp) / "faithful.pt", default_metadata(faithful))
        runs = (("shipped (dot-product head, adaptation, coarse protocol and superpixel pooling on: the default)",
                 model_path, n, 1.0, True, True),
                ("shipped head, adaptation on, coarse protocol off", model_path, n, 1.0, False, True),
                ("shipped head, adaptation off", model_path, n, 0.0, True, True),
                ("shipped head, superpixel pooling off", model_path, n, 1.0, True, False),
                ("faithful head", fpath, 2, 0.0, False, False))
        for name, path, count, adapt, coarse, pooled in runs:
            model = Pancakes.load(path, device="cpu", adapt=adapt, coarse=coarse, superpixels=pooled)
            t = timed(lambda: model.segment(imgs[:count], 8, 20), repeat=3 if count > 2 else 1)
            rows.append((name, 1000 * t / count))
    return rows


def volume_run(model_path: Path, shape) -> dict:
    model = Pancakes.load(model_path, device="cpu")
    img = volume(shape)
    t0 = time.perf_counter()
    enc = model.encode_volume(img)
    t1 = time.perf_counter()
    model.decode_volume(enc, 8, 20)
    t2 = time.perf_counter()
    # A different protocol (or K) at every call: the predictor hands back its last decode when asked for
    # the same (M, K, which) again, and timing that cache hit measured nothing (0.00 s).
    protocols, ks = iter(range(1, 8)), iter(range(12, 16))
    switch = timed(lambda: model.decode_volume(enc, 8, 20, which=[next(protocols)]), repeat=2)
    change_k = timed(lambda: model.decode_volume(enc, 8, next(ks), which=[3]), repeat=2)

    def switch_segmenting_again():
        enc.features.regions = RegionCache()  # as before the region cache: every slice segmented again
        model.decode_volume(enc, 8, 20, which=[next(protocols)])

    uncached = timed(switch_segmenting_again, repeat=2)
    return {"encode": t1 - t0, "decode_all": t2 - t1, "switch_protocol": switch, "change_k": change_k,
            "switch_uncached": uncached}


def peak_memory(model_path: Path, shape) -> float:
    """Peak RSS (MiB) of a fresh process segmenting a volume of ``shape``."""
    code = (
        "import resource, sys, json; sys.path.insert(0, %r);"
        "from bench_inference import volume; from pancakes import Pancakes;"
        "m = Pancakes.load(%r, device='cpu'); m.segment_volume(volume(%r), 8, 20);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    ) % (str(Path(__file__).parent), str(model_path), tuple(shape))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--quick", action="store_true", help="smaller volumes, for a smoke run")
    args = ap.parse_args()
    model_path = Path(args.model) if args.model else bundled_model_path()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {model_path}\n")

    rows = per_image(model_path)
    print("| head | ms per 128x128 image (M=8, K=20) |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    default, coarse_off, adapt_off, pooling_off, faithful = (ms for _, ms in rows)
    print(f"\nspeed-up of the shipped head: {faithful / default:.0f}x; adaptation costs {default - adapt_off:.1f} "
          f"ms per image, the coarse protocol {default - coarse_off:.1f} ms, superpixel pooling "
          f"{default - pooling_off:.1f} ms (side by side, one reading each)\n")

    shape = (50, 128, 128) if args.quick else (200, 256, 256)
    r = volume_run(model_path, shape)
    total = r["encode"] + r["decode_all"]
    print(f"| volume {shape[2]}x{shape[1]}x{shape[0]} | seconds |\n|---|---|")
    print(f"| encode (UNet, all slices) | {r['encode']:.2f} |\n| decode M=8, K=20 | {r['decode_all']:.2f} |")
    print(f"| total | {total:.2f} ({shape[0] / total:.1f} slices/s) |")
    print(f"| switch protocol (decode 1 of 8 from cache) | {r['switch_protocol']:.2f} |")
    print(f"| change K to 12 (decode 1 protocol from cache) | {r['change_k']:.2f} |")
    print(f"| switch protocol, superpixels segmented again (no region cache) | {r['switch_uncached']:.2f} |\n")

    depths = (25, 50) if args.quick else (50, 100, 200, 400)
    print("| volume (256x256 slices) | peak RSS MiB |\n|---|---|")
    for d in depths:
        print(f"| {d} slices | {peak_memory(model_path, (d, 256, 256)):.0f} |")


if __name__ == "__main__":
    main()
