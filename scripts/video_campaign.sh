#!/usr/bin/env bash
# Issue 25: train both video models at the same budget (same clips, crops, steps, lambdas,
# seed; one thread each, one after the other), ship them, then measure (mmcodec bench --video).
# ir-vi-video/separate trains for its config's steps or max_minutes, whichever comes first;
# ir-vi-video/lu2022 then trains for exactly the steps separate reached (no time cap), so the
# two have the same number of steps (lu2022 costs more time per step: its SA and CA modules).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
FRAMES=${FRAMES:-6}
.venv/bin/mmcodec train --config configs/ir-vi-video-separate.json --resume --json > runs/ir-vi-video-separate.result.json
STEPS=$(.venv/bin/python -c "import torch; print(torch.load('runs/ir-vi-video-separate/checkpoint.pt', weights_only=False)['step'])")
.venv/bin/mmcodec train --config configs/ir-vi-video-lu2022.json --resume --json steps=$STEPS max_minutes=null \
  > runs/ir-vi-video-lu2022.result.json
.venv/bin/mmcodec bench --video --data video_ir_vi/m3svd_frames --frames "$FRAMES" --gop "$FRAMES" --out results/video_bench
