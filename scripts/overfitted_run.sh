#!/usr/bin/env bash
# Issue 26 measurement, one thread, sequential (resumable). See BENCHMARKS.md "Overfitted codec".
set -euo pipefail
export OMP_NUM_THREADS=1
R=results/overfitted
mkdir -p $R
for s in roadscene-test msrs-subset; do
  .venv/bin/python -m mmcodec bench --data $s --limit 2 --codecs hevc,mmcodec:ir-vi/separate \
      --out $R/anchors-$s --no-plots > $R/anchors-$s.log 2>&1
done
LAMS=${LAMS:-0.003,0.01,0.03}
for it in ${ITERS:-100 300}; do
  for s in roadscene-test msrs-subset; do
    .venv/bin/python scripts/overfitted_bench.py code --split $s --pairs 2 --lambdas $LAMS --iters $it \
        --lr 0.02 --out $R/$s.json
  done
done
