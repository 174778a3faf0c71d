#!/usr/bin/env bash
# Issue 21: the generalisation campaign, one core, arms in turn. Each arm resumes from a scratch
# copy of the shipped weights (so an arm that ships cannot change another arm's start) and is
# judged by the ship rule of its config (validation on unseen cameras + training-subset tolerance).
# The control differs only in `single_images={}` (today's data). Same steps, crops, lr, seed.
set -euo pipefail
cd "$(dirname "$0")/.."
# The code runs from a frozen copy (CAMPAIGN_CODE) so that edits in the work tree cannot reach a running campaign.
M="env PYTHONPATH=${CAMPAIGN_CODE:-.} .venv/bin/python -m mmcodec"
SEP_STEPS=${SEP_STEPS:-25500}; RGBD_STEPS=${RGBD_STEPS:-8500}
# PARTS: which campaigns to run ("sep rgbd" = both, in turn).
PARTS=${PARTS:-"sep rgbd"}
for arm in mixed control; do
  mkdir -p runs/start-sep-$arm && cp mmcodec/weights/ir-vi__separate.* runs/start-sep-$arm/
  mkdir -p runs/start-rgbd-$arm && cp mmcodec/weights/rgb-d__hyperprior.* runs/start-rgbd-$arm/
done
if [[ " $PARTS " == *" sep "* ]]; then
$M train --config configs/ir-vi-separate.json --resume steps=$SEP_STEPS lr=0.0004 warmup=50 threads=1 \
   out=runs/ir-vi-separate-r15 ship_to=runs/start-sep-mixed
$M train --config configs/ir-vi-separate.json --resume steps=$SEP_STEPS lr=0.0004 warmup=50 threads=1 \
   'single_images={}' out=runs/ir-vi-separate-r15-control ship_to=runs/start-sep-control \
   ledger=ledger/ir-vi__separate-mix-control.jsonl
fi
if [[ " $PARTS " == *" rgbd "* ]]; then
$M train --config configs/rgb-d-hyperprior.json --resume steps=$RGBD_STEPS lr=0.0004 warmup=50 threads=1 \
   out=runs/rgb-d-hyperprior-r5 ship_to=runs/start-rgbd-mixed
$M train --config configs/rgb-d-hyperprior.json --resume steps=$RGBD_STEPS lr=0.0004 warmup=50 threads=1 \
   'single_images={}' out=runs/rgb-d-hyperprior-r5-control ship_to=runs/start-rgbd-control \
   ledger=ledger/rgb-d__hyperprior-mix-control.jsonl
fi
echo campaign done
