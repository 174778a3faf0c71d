#!/usr/bin/env bash
# Equal-budget test of a wider visible codec (issue 21: the texture ceiling). Both arms start from the
# shipped ir-vi/separate and train the visible codec only (infrared frozen) for the same steps, data mix,
# crops, lr and seed; the wide arm's transforms are first widened without changing what it decodes
# (scripts/widen_latent.py --transform-N, mmcodec.train.widen). The arms run one after the other on one
# core; run it beside another job, not beside a second copy. Then compare them on the training subset
# and the validation cameras:
#
#   STEPS=4000 TRANSFORM_N=96 scripts/widen_campaign.sh
#   python scripts/compare_arms.py --control runs/widen-control/model/ir-vi__separate.json \
#       --arms runs/widen-wide/model/ir-vi__separate.json --splits ir-vi-train:10,msrs-subset
#
# The wide arm costs more per step (visible codec forward + backward at 256-px crops, batch 2:
# 0.32 s at 64 channels, 0.56 s at 96, 0.90 s at 128, one thread with the other core busy), so also
# read the ledgers' cpu_hours.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-4000}
TRANSFORM_N=${TRANSFORM_N:-96}
PY=${PY:-.venv/bin/python}
start=$($PY -c "from mmcodec.models.registry import find_model; print(find_model('ir-vi/separate').budget['steps'])")
total=$((start + STEPS))
MIX='single_images={"rgb": {"natural/bsds400/train": 0.15, "natural/bsds400/test": 0.15}, "ir": {"thermal/hituav300": 0.4}}'
COMMON=(--resume "steps=$total" lr=0.0004 warmup=50 threads=1 seed=5 'freeze=["codecs.ir."]'
        eval_split=null select_split=null validate_split=null "$MIX")

rm -rf runs/widen-start-narrow runs/widen-start-wide
mkdir -p runs/widen-start-narrow
cp mmcodec/weights/ir-vi__separate.json mmcodec/weights/ir-vi__separate.safetensors runs/widen-start-narrow/
$PY scripts/widen_latent.py ir-vi/separate --modality rgb --transform-N "$TRANSFORM_N" --out runs/widen-start-wide
kwargs=$($PY -c "import json; print(json.dumps(json.load(open('runs/widen-start-wide/ir-vi__separate.json'))['kwargs']))")

$PY -m mmcodec train --config configs/ir-vi-separate.json "${COMMON[@]}" "kwargs=$kwargs" \
    out=runs/widen-wide ship_to=runs/widen-start-wide ledger=ledger/ir-vi__separate-widen-T$TRANSFORM_N.jsonl
$PY -m mmcodec train --config configs/ir-vi-separate.json "${COMMON[@]}" \
    out=runs/widen-control ship_to=runs/widen-start-narrow ledger=ledger/ir-vi__separate-widen-control.jsonl
