#!/usr/bin/env python
"""Compare training runs (recipe or context study arms): a markdown table per arm.

Selection follows the project rule (tune on train splits, never on a test split alone): each
arm's exported model is coded for real on a subset of the *training* pairs (`--select`,
every `--every`-th pair) and compared by BD-rate against one arm (`--baseline`). The test
split figures (bpp/PSNR per rate point and BD-rate vs HEVC intra) are read from the ledger
rows that `mmcodec train` wrote after each run; they are reported, not used to choose.

    python scripts/study_table.py --ledger ledger/recipe_study.jsonl \
        --baseline runs/study/b-lr1e-3-cosine --select ir-vi-train --every 10 --json out.json
    (`--arms runs/study/g-... runs/study/h-...` restricts the table to those arms and the baseline)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mmcodec.bench.learned import evaluate_codec
from mmcodec.codec import Codec
from mmcodec.models.registry import read_manifest
from mmcodec.train.campaign import _records
from mmcodec.train.evaluate import bd_rates, read_ledger


def _manifest(run: str) -> Path:
    found = sorted(Path(run, "model").glob("*.json"))
    if not found:
        raise SystemExit(f"no exported model in {run}/model")
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ledger", required=True, help="JSONL ledger the arms appended to")
    ap.add_argument("--baseline", required=True, help="run directory of the arm the others are compared with")
    ap.add_argument("--select", default="ir-vi-train", help="training split used to choose")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--arms", nargs="*", help="only these run directories (and the baseline); default: every run")
    ap.add_argument("--json", help="write the table's numbers here too")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows = {r["run"]: r for r in read_ledger(Path(args.ledger))}  # the last row of each run wins
    if args.arms:
        rows = {run: r for run, r in rows.items() if run in args.arms or run == args.baseline}
    if args.baseline not in rows:
        raise SystemExit(f"{args.baseline} has no row in {args.ledger}")
    records = _records(args.select, args.every)
    select_rows = {}
    for run, entry in rows.items():
        codec = Codec(read_manifest(_manifest(run)))
        select_rows[run] = evaluate_codec(codec, records, progress=False)
    modalities = [k[4:] for k in rows[args.baseline]["eval"][0] if k.startswith("bpp_")]
    out = []
    print(f"selection: {len(records)} pairs of {args.select} (every {args.every}th); "
          f"test: {rows[args.baseline].get('eval_split')}\n")
    head = "| arm | steps | CPU-min | " + " | ".join(
        f"{m}: bpp / PSNR at q1, q4 (test)" for m in modalities) + \
        " | BD-rate vs HEVC (test) | BD-rate vs baseline (test) | BD-rate vs baseline (selection, train) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for run, entry in rows.items():
        vs = bd_rates(select_rows[run], select_rows[args.baseline], modalities) if run != args.baseline else None
        vs_test = bd_rates(entry["eval"], rows[args.baseline]["eval"], modalities) if run != args.baseline else None
        ev = entry["eval"]
        cells = [f"{ev[0][f'bpp_{m}']:.3f} / {ev[0][f'psnr_{m}']:.2f}, {ev[-1][f'bpp_{m}']:.3f} / "
                 f"{ev[-1][f'psnr_{m}']:.2f}" for m in modalities]
        hevc = entry.get("bd_rate_vs_hevc") or {}
        fmt = lambda d: ", ".join(f"{m} {d[m]:+.1f} %" for m in modalities if d.get(m) is not None) or "—"
        print(f"| {Path(run).name} | {entry['steps']} | {60 * entry['cpu_hours']:.1f} | " + " | ".join(cells) +
              f" | {fmt(hevc)} | {'baseline' if vs_test is None else fmt(vs_test)}"
              f" | {'baseline' if vs is None else fmt(vs)} |")
        out.append({"run": run, "steps": entry["steps"], "cpu_hours": entry["cpu_hours"], "test": ev,
                    "bd_rate_vs_hevc": hevc, "bd_rate_vs_baseline_test": vs_test, "selection": select_rows[run], "bd_rate_vs_baseline": vs})
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
