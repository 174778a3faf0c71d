#!/usr/bin/env python
"""Per-rate-point table of an RGB-D `mmcodec bench` run: mean bpp, RGB PSNR, depth PSNR
(peak 65535) and depth RMSE / MAE in the input's units (mm for RGB-D-D), one row per codec
and rate point; then each codec's mean encode / decode seconds per pair as the bench timed
them (wall clock of the bench process, so only as quiet as the machine was). Reads the
bench's results.json; measures nothing itself.

    python scripts/rate_point_table.py results/rgbdd_tcm/results.json --codecs mmcodec:rgb-d/separate-plus,...
"""
from __future__ import annotations

import argparse
import json


def table(results: dict, codecs: list[str]) -> str:
    lines = ["| codec | rate | pair bpp | RGB bpp | RGB PSNR (dB) | depth bpp | depth PSNR (dB) | depth RMSE | depth MAE |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in codecs:
        res = results["codecs"][name]["results"]
        rgb, depth, pair = res["rgb"]["results"], res["depth"]["results"], res["pair"]["results"]
        for i in range(len(rgb["bpp"])):
            lines.append(f"| {name} | {i + 1} | {pair['bpp'][i]:.3f} | {rgb['bpp'][i]:.3f} | {rgb['psnr-rgb'][i]:.2f} "
                         f"| {depth['bpp'][i]:.3f} | {depth['psnr'][i]:.2f} | {depth['rmse'][i]:.1f} "
                         f"| {depth['mae'][i]:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--codecs", help="comma-separated codec names (default: every mmcodec:* codec)")
    args = ap.parse_args()
    results = json.load(open(args.results))
    codecs = args.codecs.split(",") if args.codecs else [c for c in results["codecs"] if c.startswith("mmcodec:")]
    print(table(results, codecs))
    print()
    print("| codec | encode s / pair | decode s / pair | pairs x rates timed |")
    print("|---|---:|---:|---:|")
    for name in codecs:
        rows = [r for r in results.get("per_image", []) if r["codec"] == name and r.get("encode_s") is not None]
        if name.startswith("mmcodec:"):
            rows = [r for r in rows if r["modality"] == "rgb"]    # a pair's times sit on its first image's row
        if rows:
            enc = sum(r["encode_s"] for r in rows) / len(rows)
            dec = sum(r["decode_s"] for r in rows) / len(rows)
            print(f"| {name} | {enc:.2f} | {dec:.2f} | {len(rows)} |")


if __name__ == "__main__":
    main()
