#!/usr/bin/env bash
# Issue 20: the other shipped models at effort 0 and 2 (and 1 for rgb-d), N pairs each (N2 for the slower
# joint models), real bitstreams, against the same model at effort 0.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}; N2=${N2:-2}
.venv/bin/mmcodec bench --data rgbdd-test --limit $N --anchor mmcodec:rgb-d/hyperprior --cache results/effort/cache \
    --codecs hevc,mmcodec:rgb-d/hyperprior,mmcodec:rgb-d/hyperprior@effort=1,mmcodec:rgb-d/hyperprior@effort=2 \
    --out results/effort/rgbdd-test
for model in lu2022 ccem; do
  .venv/bin/mmcodec bench --data msrs-subset --limit $N2 --anchor mmcodec:ir-vi/$model --cache results/effort/cache \
      --codecs hevc,mmcodec:ir-vi/$model,mmcodec:ir-vi/$model@effort=2 \
      --out results/effort/msrs-subset-$model
done
