#!/usr/bin/env bash
# Issue 26 measurement, one thread, sequential (resumable: finished cells are skipped).
# What was run on 2026-12-02 (see BENCHMARKS.md "Overfitted codec"): anchors for the first 2
# pairs of each split; 100 iterations on 2 RoadScene test pairs and the first MSRS pair; 300 iterations
# on the first pair of each (the CPU budget of the session).
set -euo pipefail
export OMP_NUM_THREADS=1
R=results/overfitted
mkdir -p $R
for s in roadscene-test msrs-subset; do
  [ -f $R/anchors-$s/results.json ] || .venv/bin/python -m mmcodec bench --data $s --limit 2 \
      --codecs hevc,mmcodec:ir-vi/separate --out $R/anchors-$s --no-plots > $R/anchors-$s.log 2>&1
done
LAMS=${LAMS:-0.003,0.01,0.03}
run() {  # split pairs iterations
  .venv/bin/python scripts/overfitted_bench.py code --split $1 --pairs $2 --lambdas $LAMS --iters $3 \
      --lr 0.05 --out $R/$1.json
}
run roadscene-test 2 100
run msrs-subset 1 100
run roadscene-test 1 300
run msrs-subset 1 300
