#!/usr/bin/env bash
# Issue 24: the EA (element-wise alignment) row of the Lu et al. ablation, at the budget of the
# other rows: + 1,000 steps from the separate baseline's 4,000-step checkpoint, visible frozen.
# That checkpoint did not survive (runs/ is not kept), so it is retrained first with the
# 4,000-step recipe of ledger/ir-vi__separate.jsonl (lr 1e-3, warm-up 200, 128-px crops, batch 8,
# today's 245 pairs only, seed 0, 1 thread); its row goes to a scratch ledger and ships nowhere.
set -euo pipefail
cd "$(dirname "$0")/.."
M="env PYTHONPATH=${CAMPAIGN_CODE:-.} .venv/bin/python -m mmcodec"
mkdir -p runs/ablation-ea
$M train --config configs/ir-vi-separate.json steps=4000 lr=0.001 warmup=200 threads=1 'single_images={}' \
   'crop_schedule=[]' validate_split=null validate_anchor_results=null out=runs/ablation-ea/separate-4000 \
   ship_to=runs/ablation-ea/ship ledger=runs/ablation-ea/separate.jsonl
$M train --config configs/ir-vi-lu2022-ea.json init_from=runs/ablation-ea/separate-4000/checkpoint.pt \
   out=runs/ablation-ea/lu2022-ea
echo ablation done
