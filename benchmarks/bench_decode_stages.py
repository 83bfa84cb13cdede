"""Where one 128 x 128 image's time goes in the default 2D decode: each stage timed alone, side by side in
one process, then ``Pancakes.segment`` as a whole. Prints a Markdown table.

    python benchmarks/bench_decode_stages.py [--model model_weights/pancakes.pt] [--threads 2] [--images 16]

Why: the per-image target (30 ms) is missed, and the stages that decide whether it can be met differ in kind.
The encoder and the head are matrix work that scales with threads; Felzenszwalb (scikit-image) runs on one
thread whatever torch is given; the pooling and the labels are memory-bound. A table per stage says which
one a change must shrink. Stages take the previous stage's outputs, as the engine chains them
(``Pancakes.decode_logits``), so each row is that stage's own cost.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from bench_inference import timed  # this folder is on sys.path when the script runs

import pancakes.superpixel_pooling as superpixel_pooling
from pancakes import Pancakes
from pancakes.coarse_protocol import apply_coarse
from pancakes.preprocessing import inner_box, labels_from_logits
from pancakes.superpixel_pooling import RegionCache, pool_in_superpixels, regions_of


def per_image_ms(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` wall times after a warm-up (bench_inference.timed), in ms per image."""
    return 1000 * timed(fn, repeat) / n


def stage_rows(model: Pancakes, n: int, M: int = 8, K: int = 20) -> list:
    """[(stage, ms per image)] for ``n`` random 128 x 128 images at M, K."""
    imgs = [np.random.default_rng(i).random((128, 128)).astype(np.float32) for i in range(n)]
    enc = model.encode(imgs)
    feats, inputs, inners = enc.features, enc.inputs, [inner_box(f) for f in enc.fits]
    every: list = []
    rows = [("encode (UNet)", per_image_ms(lambda: model.encode(imgs), n))]
    with torch.no_grad():
        head = lambda: [model.module.decode_logits_adapted(p.float(), M, K, every, model.adapt) for p in feats]
        rows.append(("head with the adaptation", per_image_ms(head, n)))
        rows.append(("head without it", per_image_ms(
            lambda: [model.module.decode_logits(p.float(), M, K, every) for p in feats], n)))
        logits = head()

        def coarse():
            for lg, x, inner in zip(logits, inputs, inners):
                apply_coarse(model.module, lg.clone(), M, K, every, model._groups, x, inner)

        rows.append(("coarse protocol and its intensity step", per_image_ms(coarse, n)))
        rows.append(("superpixels (Felzenszwalb), one image at a time", per_image_ms(
            lambda: [regions_of(x, inner) for x, inner in zip(inputs, inners)], n)))
        rows.append((f"superpixels, all images at once on {torch.get_num_threads()} threads (`RegionCache.prefetch`)",
                     per_image_ms(lambda: RegionCache().prefetch(list(zip(range(n), inputs, inners))), n)))
        regions = [regions_of(x, inner) for x, inner in zip(inputs, inners)]
        rows.append(("pooling in the superpixels", per_image_ms(
            lambda: [pool_in_superpixels(lg, x, inner, r) for lg, x, inner, r in zip(logits, inputs, inners, regions)],
            n)))
        rows.append(("labels at the image's size", per_image_ms(
            lambda: [labels_from_logits(lg, f) for lg, f in zip(logits, enc.fits)], n)))
    rows.append(("`Pancakes.segment`, all of it", per_image_ms(lambda: model.segment(imgs, M, K), n, repeat=7)))
    threaded = superpixel_pooling.segment_many
    superpixel_pooling.segment_many = lambda crops, *a: [superpixel_pooling.superpixels(c, *a) for c in crops]
    try:
        rows.append(("`Pancakes.segment`, Felzenszwalb on one thread (before 2026-12-07)",
                     per_image_ms(lambda: model.segment(imgs, M, K), n, repeat=7)))
    finally:
        superpixel_pooling.segment_many = threaded
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model file (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Pancakes.load(args.model, device="cpu")
    name = Path(args.model).name if args.model else "bundled pancakes.pt"
    print(f"## Decode stages, {name}, M=8, K=20, 128x128 random images, {args.threads} threads, "
          f"torch {torch.__version__}\n")
    print("| stage | ms per image |\n|---|---|")
    for stage, ms in stage_rows(model, args.images):
        print(f"| {stage} | {ms:.1f} |")


if __name__ == "__main__":
    main()
