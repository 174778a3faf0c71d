#!/usr/bin/env python
"""BD-rate against HEVC intra (per modality and pair) of a model whose modality codecs come from
the last rows of one or more ledgers, on the committed HEVC curves.

Separate coding writes independent streams, so a model composed of the visible codec of one run
and the infrared codec of another (`scripts/compose_modalities.py`) codes each modality exactly as
its run did: its rate points are the rows' per-modality figures, and its pair bpp is the first
row's minus that modality's bpp plus the other run's. The rows are the trainer's real-bitstream
evaluations (`validate` on the validation split, `eval` on the test split).

    python scripts/ledger_bd.py --take rgb=ledger/ir-vi__separate-armA.jsonl --take ir=ledger/ir-vi__separate-armB.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcodec.train.evaluate import anchor_rows_from_results, bd_rates

ANCHORS = {"validate": "benchmarks/msrs-subset", "eval": "benchmarks/roadscene-test"}


def last_row(ledger: str) -> dict:
    return json.loads(Path(ledger).read_text().strip().splitlines()[-1])


def combined_rows(takes: dict[str, dict], key: str) -> list[dict]:
    """Rate points of the model built from `takes` ({modality: ledger row}) on one split."""
    first = next(iter(takes.values()))
    rows = []
    for i, base in enumerate(first[key]):
        row = dict(base)
        for m, source in takes.items():
            other = source[key][i]
            if (other["quality"], other["images"]) != (base["quality"], base["images"]):
                raise SystemExit(f"{key}: the rows were not evaluated on the same images and qualities")
            row["pair_bpp"] += other[f"bpp_{m}"] - row[f"bpp_{m}"]
            row[f"bpp_{m}"], row[f"psnr_{m}"] = other[f"bpp_{m}"], other[f"psnr_{m}"]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--take", action="append", required=True, metavar="MODALITY=LEDGER",
                    help="the codec of MODALITY from the last row of LEDGER (the first --take gives the rest)")
    args = ap.parse_args()
    takes = {}
    for spec in args.take:
        modality, _, ledger = spec.partition("=")
        takes[modality] = last_row(ledger)
    first = next(iter(takes.values()))
    modalities = sorted({k[4:] for k in first["eval"][0] if k.startswith("bpp_")}, key=["rgb", "ir", "depth"].index)
    for key in ("validate", "eval"):
        split = first.get(f"{key}_split")
        if not first.get(key):
            continue
        anchor = anchor_rows_from_results(Path(ANCHORS[key]), "hevc", modalities)
        bds = bd_rates(combined_rows(takes, key), anchor, modalities, pair=True)
        print(f"{split} vs HEVC intra: " + ", ".join(f"{m} {v:+.1f} %" for m, v in bds.items() if v is not None))


if __name__ == "__main__":
    main()
