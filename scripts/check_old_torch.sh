#!/usr/bin/env bash
# Do the bundled TorchScript files load, and give the same labels, under the oldest supported torch?
# (issue 17, defect 4: Slicer 5.6/5.8 embed Python 3.9, whose newest torch is 2.8.)
#
#   scripts/check_old_torch.sh [OLD_VERSION] [VENV]     # defaults: 2.8.0, /tmp/venv-old-torch
#
# Installs torch==OLD_VERSION with --no-deps into a separate venv that sees this Python's
# packages (numpy, SimpleITK, sympy...). PyPI's Linux wheels are CUDA builds that need the
# nvidia-* libraries just to import, so those are installed too, pinned from the wheel's
# own metadata (~3 GB in all; CPU inference only). Then both torches segment the samples
# (benchmarks/old_torch_labels.py) and the outputs are compared.
#
# Result (2026-12-03, torch 2.13.0+cpu vs 2.8.0+cu128 on CPU, brain1 + breast1, M=8 K=20):
# the files saved by torch 2.13 did NOT load in 2.8 ("Unknown builtin op:
# aten::_upsample_lanczos2d_aa", from F.interpolate's scripted graph). They were re-saved
# with torch 2.8 from the same weights (benchmarks/reexport_models.py: dump under 2.13,
# export under 2.8); the re-saved files give labels identical to the originals under
# 2.13 (0 voxels differ, refine logits bit-identical) and under 2.8 (0 label voxels,
# 0 refine mask pixels differ; max |logit difference| 6e-7).
set -euo pipefail
OLD="${1:-2.8.0}"
VENV="${2:-/tmp/venv-old-torch}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$OLD')" 2>/dev/null; then
    python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" download --no-deps -d "$WORK" "torch==$OLD"
    WHEEL="$(ls "$WORK"/torch-*.whl)"
    "$VENV/bin/pip" install --no-deps "$WHEEL"
    unzip -p "$WHEEL" "torch-$OLD.dist-info/METADATA" | sed -n 's/^Requires-Dist: \(nvidia-[^;]*\);.*Linux.*/\1/p' \
        > "$WORK/nvidia.txt"
    if [ -s "$WORK/nvidia.txt" ]; then "$VENV/bin/pip" install --no-deps -r "$WORK/nvidia.txt"; fi
fi

cd "$ROOT"
export PYTHONPATH="$ROOT/PancakesSegment"
python3 benchmarks/old_torch_labels.py "$WORK/new.npz"
"$VENV/bin/python" benchmarks/old_torch_labels.py "$WORK/old.npz"
python3 benchmarks/old_torch_labels.py --compare "$WORK/new.npz" "$WORK/old.npz"
