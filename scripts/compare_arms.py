#!/usr/bin/env python
"""BD-rate of training arms against their equal-budget control, with 95 % intervals over pairs.

Codes every pair of each split with each model (real .mmc files, `mmcodec.bench.learned.code_pair`)
at every quality, then reports per modality and for the pair (whole-file bits, mean PSNR) the
BD-rate of each arm against the control on the mean curves, and the 2.5-97.5 % bootstrap
interval over pairs (resampling stems, as scripts/bd_bootstrap.py does for bench results).
Models are manifests (a run's `model/<name>.json`) or installed names.

    python scripts/compare_arms.py --control runs/ir-vi-separate-continue/model/ir-vi__separate.json \\
        --arms runs/ir-vi-lu2022-sa-fromsep/model/ir-vi__lu2022-sa.json \\
        --splits ir-vi-train:10,msrs-subset,roadscene-test --json results/arms.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mmcodec.bench.bdrate import bd
from mmcodec.bench.learned import code_pair
from mmcodec.bench.metrics import PRIMARY_METRIC
from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import split_records
from mmcodec.models.registry import find_model, read_manifest


def load_codec(spec: str) -> Codec:
    return Codec(read_manifest(Path(spec)) if spec.endswith(".json") else find_model(spec))


def per_pair(codec: Codec, split: str, every: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """stem -> curve name (modality or "pair") -> [(bpp, PSNR) per quality]."""
    from tqdm import tqdm
    out: dict = {}
    for rec in tqdm(split_records(split)[::every], desc=f"{codec.name} on {split}", leave=False):
        images = {m: load_modality(m, rec.paths[m]) for m in codec.modalities}
        curves: dict[str, list] = {m: [] for m in (*codec.modalities, "pair")}
        for q in codec.installed.qualities:
            coded = code_pair(codec, images, q, decode=False, msssim=False)
            for m, row in coded["rows"].items():
                curves[m].append((row["bpp"], row[PRIMARY_METRIC[m]]))
            curves["pair"].append((coded["pair_bpp"],
                                   float(np.mean([row[PRIMARY_METRIC[m]] for m, row in coded["rows"].items()]))))
        out[rec.stem] = curves
    return out


def bd_of_means(test: dict, anchor: dict, stems: list[str], curve: str) -> float | None:
    def mean(d):
        pts = np.array([d[s][curve] for s in stems])          # pairs x qualities x 2
        return pts[..., 0].mean(0), pts[..., 1].mean(0)
    (ab, aq), (tb, tq) = mean(anchor), mean(test)
    r = bd(list(ab), list(aq), list(tb), list(tq))
    return r.bd_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--control", required=True)
    ap.add_argument("--arms", required=True, help="comma-separated manifests or names")
    ap.add_argument("--splits", default="ir-vi-train:10,msrs-subset,roadscene-test",
                    help="split[:every], comma-separated")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    control = load_codec(args.control)
    arms = [load_codec(a) for a in args.arms.split(",")]
    rng = np.random.default_rng(0)
    report: dict = {"control": args.control, "arms": args.arms.split(","), "splits": {}}
    for spec in args.splits.split(","):
        split, _, every = spec.partition(":")
        every = int(every or 1)
        anchor = per_pair(control, split, every)
        stems = sorted(anchor)
        report["splits"][split] = {"pairs": len(stems), "every": every, "arms": {}}
        for arm_spec, arm in zip(args.arms.split(","), arms):
            test = per_pair(arm, split, every)
            res = {}
            for curve in (*arm.modalities, "pair"):
                full = bd_of_means(test, anchor, stems, curve)
                boots = [bd_of_means(test, anchor, list(rng.choice(stems, len(stems))), curve)
                         for _ in range(args.boot)]
                boots = [b for b in boots if b is not None]
                lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots else (None, None))
                res[curve] = {"bd_rate": None if full is None else round(full, 2),
                              "ci95": None if lo is None else [round(float(lo), 2), round(float(hi), 2)]}
                print(f"{split:15s} {arm.name:22s} vs {control.name:18s} {curve:5s} "
                      f"{res[curve]['bd_rate']} % [{res[curve]['ci95']}]", flush=True)
            report["splits"][split]["arms"][arm_spec] = res
            report["splits"][split].setdefault("curves", {})[arm_spec] = test
        report["splits"][split]["curves"]["control"] = anchor
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
