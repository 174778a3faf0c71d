#!/usr/bin/env bash
# Issue 20: encoder effort levels of ir-vi/separate against effort 0 and HEVC intra, real bitstreams.
# N pairs of each split (first N by name), every quality, effort 0-3 (BENCHMARKS.md, "Encoder effort").
# SPLITS overrides the split list. The code runs from CAMPAIGN_CODE if set (a frozen copy).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}
M="env PYTHONPATH=${CAMPAIGN_CODE:-.} .venv/bin/python -m mmcodec"
C=hevc,mmcodec:ir-vi/separate,mmcodec:ir-vi/separate@effort=1,mmcodec:ir-vi/separate@effort=2,mmcodec:ir-vi/separate@effort=3
for split in ${SPLITS:-roadscene-test msrs-subset tno-test}; do
  $M bench --data $split --limit $N --codecs $C --anchor mmcodec:ir-vi/separate \
      --cache results/effort/cache --out results/effort/$split
done
