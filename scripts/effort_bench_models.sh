#!/usr/bin/env bash
# Issue 20: the other shipped models at effort 0-3, real bitstreams, against the same model at effort 0:
# rgb-d on N RGB-D-D test pairs, the slower joint models (Lu, CCEM) on N2 pairs of each split in JOINT_SPLITS.
# The code runs from CAMPAIGN_CODE if set (a frozen copy).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}; N2=${N2:-2}
M="env PYTHONPATH=${CAMPAIGN_CODE:-.} .venv/bin/python -m mmcodec"
levels() { echo "hevc,mmcodec:$1,mmcodec:$1@effort=1,mmcodec:$1@effort=2,mmcodec:$1@effort=3"; }
if [ -z "${SKIP_RGBD:-}" ]; then
  $M bench --data rgbdd-test --limit $N --anchor mmcodec:rgb-d/hyperprior --cache results/effort/cache \
      --codecs "$(levels rgb-d/hyperprior)" --out results/effort/rgbdd-test
fi
for split in ${JOINT_SPLITS:-msrs-subset}; do
  for model in ${JOINT_MODELS:-lu2022 ccem}; do
    $M bench --data $split --limit $N2 --anchor mmcodec:ir-vi/$model --cache results/effort/cache \
        --codecs "$(levels ir-vi/$model)" --out results/effort/$split-$model
  done
done
