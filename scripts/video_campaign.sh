#!/usr/bin/env bash
# Issue 25: train both video models at the same budget (same clips, crops, steps, lambdas,
# seed; one thread each, one after the other), ship them, then measure (scripts/video_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
FRAMES=${FRAMES:-8}
for arch in separate lu2022; do
  .venv/bin/mmcodec train --config configs/ir-vi-video-$arch.json --resume --json > runs/ir-vi-video-$arch.result.json
done
.venv/bin/mmcodec bench --video --data video_ir_vi/m3svd_frames --frames "$FRAMES" --gop "$FRAMES" --out results/video_bench
