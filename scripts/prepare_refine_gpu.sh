#!/usr/bin/env bash
# Fill .gpu_refine/ (git-ignored, ~55 MB) with what a refiner run on a device machine
# needs, then name it in the device call's `carry` and run scripts/train_refine_gpu.sh there.
#
#   scripts/prepare_refine_gpu.sh [INIT]     # INIT: refiner to continue (default: model_weights/refine.pt)
#
# The GPU machines' torch (2.11) cannot read TorchScript files scripted by torch 2.13,
# so the protocol model and the starting refiner travel as plain state files
# (pancakes.training.refine.portable_weights). Only the TRAIN split's banks travel.
set -euo pipefail
cd "$(dirname "$0")/.."
init=${1:-model_weights/refine.pt}
dst=.gpu_refine
data=${PANCAKES_DATA_DIR:-$HOME/.cache/pancakes/data}
synth=${XDG_CACHE_HOME:-$HOME/.cache}/pancakes/synthetic
mkdir -p "$dst/data/slices" "$dst/cache/pancakes/synthetic"
for name in $(python3 -c "from pancakes.training.real_data import TRAIN_DATASETS; print(*TRAIN_DATASETS)"); do
  cp "$data/slices/${name}_128.npz" "$dst/data/slices/"
done
cp "$synth"/v1_seed0_t80_*.npy "$dst/cache/pancakes/synthetic/"  # the generator's 32 templates (seed 0)
python3 - "$init" "$dst" <<'PY'
import sys, torch
from pancakes.training.refine.portable_weights import init_weights, save_pancakes_state
init, dst = sys.argv[1], sys.argv[2]
save_pancakes_state("model_weights/pancakes.pt", f"{dst}/pancakes.state")
torch.save({"net": init_weights(init)}, f"{dst}/init.ckpt")
PY
du -sh "$dst"
