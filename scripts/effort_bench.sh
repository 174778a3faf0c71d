#!/usr/bin/env bash
# Issue 20: encoder effort levels of ir-vi/separate against effort 0 and HEVC intra, real bitstreams.
# N pairs of each split (first N by name), every quality, effort 0-3 (BENCHMARKS.md, "Encoder effort").
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}
C=hevc,mmcodec:ir-vi/separate,mmcodec:ir-vi/separate@effort=1,mmcodec:ir-vi/separate@effort=2,mmcodec:ir-vi/separate@effort=3
for split in msrs-subset roadscene-test; do
  .venv/bin/mmcodec bench --data $split --limit $N --codecs $C --anchor mmcodec:ir-vi/separate \
      --cache results/effort/cache --out results/effort/$split
done
