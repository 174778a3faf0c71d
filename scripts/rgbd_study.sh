#!/usr/bin/env bash
# The whole RGB-D LIC-TCM variant study of issue 6 (BENCHMARKS.md, "LIC-TCM RGB-D and the
# depth-fusion variants"), end to end: the separate baseline, the five +300-step arms, then the
# 40-pair benchmark against the control and against HEVC, the rate-point table and the bootstrap
# intervals. About 3.5 CPU-hours of training and 1.3 of coding on a 2-core machine: one job
# per core, because a 2-thread job next to another job slows several times here.
#
#   bash scripts/rgbd_study.sh            # from the project root, with .venv installed
#   BASE_OVERRIDES='steps=1200 ...' ARM_OVERRIDES='steps=150' bash scripts/rgbd_study.sh   # a smaller budget
set -euo pipefail
cd "$(dirname "$0")/.."
M=.venv/bin/mmcodec
PY=.venv/bin/python
mkdir -p runs results
log() { echo "$(date -u +%FT%TZ) $*"; }

[ -f runs/rgb-d-separate/model/rgb-d__separate.json ] || \
  $M train --config configs/rgb-d-separate.json eval_split=null ${BASE_OVERRIDES:-} > runs/rgb-d-separate.log 2>&1
log "baseline done"

arm() { [ -f "runs/rgb-d-$1/budget.json" ] || $M train --config "configs/rgb-d-$1.json" ${ARM_OVERRIDES:-} > "runs/rgb-d-$1.log" 2>&1; log "arm $1 done"; }
MP=runs/rgb-d-separate/model:runs/rgb-d-separate-plus/model:runs/rgb-d-concat4/model:runs/rgb-d-convfusion/model:runs/rgb-d-prompt/model:runs/rgb-d-decoder-side/model
ARMS=mmcodec:rgb-d/concat4,mmcodec:rgb-d/convfusion,mmcodec:rgb-d/prompt,mmcodec:rgb-d/decoder-side
CODECS=hevc,jpeg2000,jpegxl,mmcodec:rgb-d/hyperprior,mmcodec:rgb-d/separate,mmcodec:rgb-d/separate-plus,$ARMS
# Each core trains its chain of arms, then codes the cells of the codecs it has ready (cells are
# separate files in one shared cache), so coding starts while the other chain still trains.
part() { local out=$1 codecs=$2; MMCODEC_MODEL_PATH=$MP $M bench --data rgbdd-test --cache results/rgbdd_test/cache \
  --codecs "$codecs" --anchor "${codecs%%,*}" --out "$out" --no-plots > "$out.log" 2>&1; log "cells $out done"; }
( arm separate-plus; arm convfusion; arm decoder-side
  part results/rgbdd_part_a mmcodec:rgb-d/separate-plus,mmcodec:rgb-d/convfusion,mmcodec:rgb-d/decoder-side ) &
chain_a=$!
( arm prompt; arm concat4
  part results/rgbdd_part_b hevc,jpeg2000,jpegxl,mmcodec:rgb-d/hyperprior,mmcodec:rgb-d/separate,mmcodec:rgb-d/prompt,mmcodec:rgb-d/concat4 ) &
chain_b=$!
# A bare `wait` returns 0 whatever the chains did: stop here if either failed.
wait $chain_a || { log "chain a failed (runs/*.log, results/rgbdd_part_a.log)"; exit 1; }
wait $chain_b || { log "chain b failed (runs/*.log, results/rgbdd_part_b.log)"; exit 1; }

# Every cell is cached now: these two only assemble the tables and plots.
MMCODEC_MODEL_PATH=$MP $M bench --data rgbdd-test --cache results/rgbdd_test/cache --codecs "$CODECS" \
  --anchor mmcodec:rgb-d/separate-plus --out results/rgbdd_tcm
MMCODEC_MODEL_PATH=$MP $M bench --data rgbdd-test --cache results/rgbdd_test/cache --codecs "$CODECS" \
  --anchor hevc --out results/rgbdd_tcm_vs_hevc --no-plots
$PY scripts/rate_point_table.py results/rgbdd_tcm/results.json > results/rgbdd_tcm/rate_points.md
$PY scripts/bd_bootstrap.py results/rgbdd_tcm/results.json --anchor mmcodec:rgb-d/separate-plus \
  --codecs "$ARMS,mmcodec:rgb-d/separate" > results/rgbdd_tcm/bootstrap_vs_separate_plus.md
$PY scripts/bd_bootstrap.py results/rgbdd_tcm/results.json --anchor mmcodec:rgb-d/separate \
  --codecs mmcodec:rgb-d/convfusion,mmcodec:rgb-d/decoder-side > results/rgbdd_tcm/bootstrap_vs_separate.md
log "study done: results/rgbdd_tcm"
