#!/usr/bin/env bash
# Issue 24's two CCEM ablation rows at the ablation's equal budget (BENCHMARKS, CCEM, "Ablation at
# equal budget"): both stage-1 codecs (whole YUV, and the paper's Y-only), then three 800-step joint
# arms from them: the agent-attention full CCEM (re-run here as the reference), the plain
# cross-attention exchange, and full CCEM from the Y-only stage 1. One thread, sequential.
set -euo pipefail
cd "$(dirname "$0")/.."
# The code runs from a frozen copy (CAMPAIGN_CODE) so that edits in the work tree cannot reach a running job.
MM="env PYTHONPATH=${CAMPAIGN_CODE:-.} .venv/bin/python -m mmcodec"
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
[ -f runs/ir-vi-ccem-stage1/checkpoint.pt ] || { log stage1; $MM train --config configs/ir-vi-ccem-stage1.json; }
[ -f runs/ir-vi-ccem-stage1-y/checkpoint.pt ] || { log stage1-y; $MM train --config configs/ir-vi-ccem-stage1-y.json; }
log full-rerun
$MM train --config configs/ir-vi-ccem-abl-full.json out=runs/ir-vi-ccem-abl-full-rerun ledger=ledger/ir-vi__ccem-abl-full-rerun.jsonl
log xattn
$MM train --config configs/ir-vi-ccem-abl-xattn.json
log stage1y
$MM train --config configs/ir-vi-ccem-abl-stage1y.json
log done
