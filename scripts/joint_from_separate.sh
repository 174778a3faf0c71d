#!/usr/bin/env bash
# Issue 22, arm 1 at equal budget: Lu et al. (SA only) from the shipped ir-vi/separate codecs,
# and its control (ir-vi/separate continued the same steps, data, crops, lr and seed, visible frozen).
# Each run ends with the trainer's real-bitstream evaluation: ir-vi-train subset (select),
# msrs-subset (validation, unseen cameras) and roadscene-test (test, reported only).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-800}
export OMP_NUM_THREADS=1
for cfg in ${ARMS:-configs/ir-vi-lu2022-sa-fromsep.json configs/ir-vi-separate-continue.json}; do
  .venv/bin/mmcodec train --config "$cfg" steps="$STEPS" checkpoint_every=100
done
