"""Labels of the bundled models on the sample volumes under the running torch, for comparing torch versions.

Run by scripts/check_old_torch.sh under the newest and the oldest supported torch::

    python benchmarks/old_torch_labels.py OUT.npz [--models DIR]   # writes labels + the torch version
    python benchmarks/old_torch_labels.py --compare A.npz B.npz   # exit 1 on any difference

Pancakes: model_weights/pancakes.pt, M=8, K=20, every protocol, on brain1 and breast1.
Refine: model_weights/refine.pt, the middle slice of each, seeded with label 1 of protocol 1,
with one positive and one negative click.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ("brain1", "breast1")
M, K = 8, 20


def labels(out: Path, models: Path) -> None:
    import SimpleITK as sitk
    import torch

    from pancakes import Pancakes, Refiner

    torch.set_num_threads(1)
    engine = Pancakes.load(models / "pancakes.pt", device="cpu")
    refiner = Refiner.load(models / "refine.pt", device="cpu")
    arrays = {"torch": np.array(torch.__version__)}
    for name in SAMPLES:
        image = sitk.ReadImage(str(ROOT / "PancakesSegment" / "Resources" / "SampleData" / f"{name}.nrrd"))
        volumes = engine.segment_volume(image, M, K)
        stack = np.stack([sitk.GetArrayFromImage(v) for v in volumes])
        arrays[f"{name}_pancakes"] = stack
        voxels = sitk.GetArrayFromImage(image).astype(np.float32)
        z = voxels.shape[0] // 2
        seed = stack[0, z] == 1
        rows, cols = np.nonzero(seed) if seed.any() else ([voxels.shape[1] // 2], [voxels.shape[2] // 2])
        positive = [(float(rows[len(rows) // 2]), float(cols[len(cols) // 2]))]
        negative = [(2.0, 2.0)]
        arrays[f"{name}_refine"] = refiner.refine_logits(voxels[z], seed, positive, negative)
    np.savez_compressed(out, **arrays)
    print(f"torch {torch.__version__}: wrote {out}")


def compare(a: Path, b: Path) -> int:
    first, second = np.load(a), np.load(b)
    print(f"torch {first['torch']} vs torch {second['torch']}")
    failed = 0
    for key in sorted(k for k in first.files if k != "torch"):
        x, y = first[key], second[key]
        if key.endswith("_pancakes"):
            differ = int((x != y).sum())
            print(f"  {key}: {differ} of {x.size} label voxels differ")
            failed += differ > 0
        else:
            worst = float(np.abs(x - y).max())
            flips = int(((x > 0) != (y > 0)).sum())
            print(f"  {key}: max |logit difference| {worst:.2e}, {flips} of {x.size} mask pixels differ")
            failed += flips > 0
    print("IDENTICAL labels" if not failed else f"{failed} outputs DIFFER")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--models", type=Path, default=ROOT / "model_weights", help="folder of pancakes.pt and refine.pt")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.paths)
    labels(args.paths[0], args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
