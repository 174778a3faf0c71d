#!/usr/bin/env python
"""How much of a BD-rate difference is the choice of test images? Bootstrap over pairs.

Reads one `mmcodec bench` results.json, takes the per-image rows of a codec and of its
anchor, resamples the pairs with replacement, averages each rate point over the resample
(as the bench does) and recomputes the BD-rate. Prints the full-set BD-rate and the 2.5-97.5 %
interval per modality. It measures image-sampling noise only, not training noise (seeds).

    python scripts/bd_bootstrap.py results/rgbdd_tcm/results.json --anchor mmcodec:rgb-d/separate-plus \\
        --codecs mmcodec:rgb-d/concat4,mmcodec:rgb-d/prompt
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from mmcodec.bench.bdrate import bd
from mmcodec.bench.metrics import PRIMARY_METRIC


def curves(rows: list[dict]) -> dict[tuple[str, str], dict[str, dict[int, tuple[float, float]]]]:
    """(codec, modality) -> stem -> rate index -> (bpp, primary quality)."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        q = r.get(PRIMARY_METRIC[r["modality"]])
        if q is not None:
            out[(r["codec"], r["modality"])][r["stem"]][r["rate_index"]] = (r["bpp"], q)
    return out


def bd_of(per_stem: dict, stems: list[str], anchor_per_stem: dict) -> float | None:
    def mean_curve(table: dict) -> tuple[list[float], list[float]]:
        rates = sorted(set.intersection(*(set(table[s]) for s in stems)))
        return ([float(np.mean([table[s][i][0] for s in stems])) for i in rates],
                [float(np.mean([table[s][i][1] for s in stems])) for i in rates])
    a_rate, a_q = mean_curve(anchor_per_stem)
    t_rate, t_q = mean_curve(per_stem)
    return bd(a_rate, a_q, t_rate, t_q).bd_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--anchor", required=True)
    ap.add_argument("--codecs", required=True, help="comma-separated codec names")
    ap.add_argument("--modalities", default="rgb,depth,pair")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    table = curves(json.load(open(args.results))["per_image"])
    rng = np.random.default_rng(args.seed)
    print("| codec | modality | BD-rate vs " + args.anchor + " | 95 % interval over test pairs |")
    print("|---|---|---:|---|")
    for codec in args.codecs.split(","):
        for m in args.modalities.split(","):
            anchor, test = table.get((args.anchor, m)), table.get((codec, m))
            if not anchor or not test:
                continue
            stems = sorted(set(anchor) & set(test))
            full = bd_of(test, stems, anchor)
            draws = [bd_of(test, list(rng.choice(stems, len(stems))), anchor) for _ in range(args.resamples)]
            draws = np.array([d for d in draws if d is not None])
            lo, hi = np.percentile(draws, [2.5, 97.5]) if len(draws) else (float("nan"), float("nan"))
            full_s = "n/a" if full is None else f"{full:+.1f} %"
            print(f"| {codec} | {m} | {full_s} | {lo:+.1f} … {hi:+.1f} % ({len(draws)} draws) |")


if __name__ == "__main__":
    main()
