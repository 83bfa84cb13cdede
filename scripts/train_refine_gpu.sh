#!/usr/bin/env bash
# One prepared refiner run on a device machine (one GPU, 16 cores), made ready by
# scripts/prepare_refine_gpu.sh; continues its INIT with real Pancakes seeds and warm
# clicks, and stops by itself after MINUTES (default 4.5; start-up and export add ~30 s).
# The Pancakes seeds are the picked label's core (--seed-core 0.8), as the panel seeds a kept
# label: refiner run 11 gained from training on them. Later options override these.
#
#   scripts/train_refine_gpu.sh OUT_DIR [MINUTES] [extra pancakes.training.refine.train options]
#
# Writes OUT_DIR/{train.log,last.ckpt,refine.pt}. Bring refine.pt back, re-script it here
# with this torch, and ship it only when benchmarks/compare_refiners.py shows a gain.
set -euo pipefail
out=${1:?usage: scripts/train_refine_gpu.sh OUT_DIR [MINUTES] [options]}
minutes=${2:-4.5}
shift $(( $# >= 2 ? 2 : 1 ))
cd "$(dirname "$0")/.."
export PANCAKES_DATA_DIR=$PWD/.gpu_refine/data XDG_CACHE_HOME=$PWD/.gpu_refine/cache PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/PancakesSegment${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
python3 -m pancakes.training.refine.train --out "$out" --init .gpu_refine/init.ckpt --pancakes .gpu_refine/pancakes.state \
  --batch 64 --lr 3e-4 --warm-clicks 6 --warm-share 0.5 --pancakes-share 0.85 --seed-core 0.8 --workers 14 \
  --device "${DEVICE:-cuda}" --minutes "$minutes" --val-every 60 "$@"
