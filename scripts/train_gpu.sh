#!/usr/bin/env bash
# One prepared GPU training stretch: continues from the shipped weights and stops
# by itself inside the device machine's budget (configs/gpu.json: 8 minutes).
#
#   scripts/train_gpu.sh OUT_DIR [CONFIG]
#
# Data: the real slice banks (~51 MB of .npz) must travel with the tree, e.g.
#   mkdir -p .gpu_data/slices && cp ~/.cache/pancakes/data/slices/*.npz .gpu_data/slices/
# and be named in the device call's `carry` (.gpu_data is git-ignored).
# Writes OUT_DIR/{train.log,messages.log,last.ckpt,best.ckpt,pancakes.pt}.
set -euo pipefail
out=${1:?usage: scripts/train_gpu.sh OUT_DIR [CONFIG]}
cfg=${2:-configs/gpu.json}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/PancakesSegment${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
init=()
if [ -f model_weights/pancakes.pt ]; then init=(--init model_weights/pancakes.pt); fi
data=${PANCAKES_DATA_DIR:-$PWD/.gpu_data}
python3 -m pancakes.training.train --out "$out" --config "$cfg" --data-cache "$data" "${init[@]}"
