#!/usr/bin/env bash
# Issue 23: VVC and HEVC 4:2:0 against HEVC 4:4:4, and every shipped learned model against VVC, on the
# first N pairs of each split (VVC's 10-QP ladder costs about 1.8 min of encoding per 640x480 pair).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-6}
B="nice -n 10 .venv/bin/mmcodec bench --limit $N --cache results/vvc_cache"
IRVI=hevc,hevc420,vvc,mmcodec:ir-vi/separate,mmcodec:ir-vi/lu2022,mmcodec:ir-vi/ccem
for split in msrs-subset roadscene-test; do
  $B --data $split --codecs $IRVI --anchor vvc --out results/vvc_models_$split
done
$B --data tno-test --codecs $IRVI --anchor hevc --out results/vvc_tno-test
$B --data rgbdd-test --codecs hevc,hevc420,vvc,mmcodec:rgb-d/hyperprior --anchor hevc --out results/vvc_rgbdd-test
