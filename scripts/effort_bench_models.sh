#!/usr/bin/env bash
# Issue 20: the other shipped models at effort 0-2 (effort 3 also for rgb-d), N pairs each, real bitstreams.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}
.venv/bin/mmcodec bench --data rgbdd-test --limit $N --anchor mmcodec:rgb-d/hyperprior --cache results/effort/cache \
    --codecs hevc,mmcodec:rgb-d/hyperprior,mmcodec:rgb-d/hyperprior@effort=1,mmcodec:rgb-d/hyperprior@effort=2,mmcodec:rgb-d/hyperprior@effort=3 \
    --out results/effort/rgbdd-test
for model in lu2022 ccem; do
  .venv/bin/mmcodec bench --data msrs-subset --limit $N --anchor mmcodec:ir-vi/$model --cache results/effort/cache \
      --codecs hevc,mmcodec:ir-vi/$model,mmcodec:ir-vi/$model@effort=1,mmcodec:ir-vi/$model@effort=2 \
      --out results/effort/msrs-subset-$model
done
.venv/bin/mmcodec bench --data tno-test --limit $N --anchor mmcodec:ir-vi/separate --cache results/effort/cache \
    --codecs hevc,mmcodec:ir-vi/separate,mmcodec:ir-vi/separate@effort=1,mmcodec:ir-vi/separate@effort=2 \
    --out results/effort/tno-test
