"""BD-rate between two models' stored per-pair curves (the `--json` output of scripts/compare_arms.py),
on the mean curves over the stems both files hold for each split: compares models measured in
different comparisons without coding again.

    python scripts/curves_bd.py benchmarks/rgbdd-test/fusion-arms.json runs/rgb-d-fusion/model/rgb-d__fusion.json \\
        benchmarks/rgbdd-test/fusion-depth-arms.json runs/rgb-d-fusion-depth/model/rgb-d__fusion.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_arms import bd_of_means  # noqa: E402  (the same mean-curve BD-rate as the comparison)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("anchor_json")
    p.add_argument("anchor_key", help="model key in the anchor file's curves ('control' for its control)")
    p.add_argument("test_json")
    p.add_argument("test_key")
    p.add_argument("--boot", type=int, default=0, help="bootstrap resamples over pairs for a 95 %% interval")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    anchor, test = json.load(open(args.anchor_json)), json.load(open(args.test_json))
    for split, entry in anchor["splits"].items():
        if split not in test["splits"]:
            continue
        a, t = entry["curves"][args.anchor_key], test["splits"][split]["curves"][args.test_key]
        stems = sorted(set(a) & set(t))
        out = {}
        for curve in next(iter(a.values())):
            r = bd_of_means(t, a, stems, curve)
            out[curve] = None if r is None else round(r, 2)
            if args.boot and r is not None:
                boots = [b for b in (bd_of_means(t, a, list(rng.choice(stems, len(stems))), curve)
                                     for _ in range(args.boot)) if b is not None]
                if boots:
                    lo, hi = np.percentile(boots, [2.5, 97.5])
                    out[curve] = f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
        print(f"{split:14s} {len(stems):3d} pairs  {out}")


if __name__ == "__main__":
    main()
