#!/usr/bin/env python
"""BD-rate against HEVC intra of every model's mean curve stored by `scripts/compare_arms.py --json`
(the arms and the control), on the committed HEVC curves of a bench folder.

    python scripts/arms_vs_hevc.py benchmarks/joint-ec/rgbd-arms.json rgbdd-test benchmarks/rgbdd-test rgb,depth
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmcodec.train.evaluate import anchor_rows_from_results, bd_rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arms_json")
    p.add_argument("split")
    p.add_argument("bench_dir", type=Path, help="folder with the HEVC results of that split")
    p.add_argument("modalities", help="comma-separated, e.g. rgb,ir")
    args = p.parse_args()
    mods = args.modalities.split(",")
    anchor = anchor_rows_from_results(args.bench_dir, "hevc", mods)
    curves = json.loads(Path(args.arms_json).read_text())["splits"][args.split]["curves"]
    for arm, per in curves.items():
        stems = list(per)
        rows = [{**{f"bpp_{m}": float(np.mean([per[s][m][q][0] for s in stems])) for m in mods},
                 **{f"psnr_{m}": float(np.mean([per[s][m][q][1] for s in stems])) for m in mods}}
                for q in range(len(per[stems[0]][mods[0]]))]
        print(f"{arm} ({len(stems)} pairs, {args.split}): {bd_rates(rows, anchor, mods, pair=True)}")


if __name__ == "__main__":
    main()
