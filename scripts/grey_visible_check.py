"""Grey visible images through the infrared codec, against the visible codec (real files).

Each pair's visible image is made grey (ITU-R 601 luma, as PIL's "L"), then coded by
`ir-vi/separate` twice at every quality: with `Codec.grey_via_ir` (the default) and without.
Prints the mean bpp / PSNR of the visible stream per quality and the BD-rate of the route
against the visible codec; `--json` keeps the curves.

    python scripts/grey_visible_check.py msrs-subset --json benchmarks/generalisation/grey-visible-msrs.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import mmcodec
from mmcodec.bench.bdrate import bd
from mmcodec.data.pairs import split_records


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", help="named pair split (a validation or training split to decide on)")
    ap.add_argument("--model", default="ir-vi/separate")
    ap.add_argument("--limit", type=int, help="first N pairs only")
    ap.add_argument("--json", help="write the curves here")
    args = ap.parse_args()
    records = split_records(args.split)[: args.limit]
    codec = mmcodec.load(args.model)
    curves: dict[str, list[tuple[float, float]]] = {"visible codec": [], "infrared codec": []}
    for q in codec.installed.qualities:
        points: dict[str, list[tuple[float, float]]] = {k: [] for k in curves}
        for rec in records:
            grey = np.asarray(Image.open(rec.paths["rgb"]).convert("L"))
            ir = np.asarray(Image.open(rec.paths["ir"]).convert("L"))
            for name, route in (("visible codec", False), ("infrared codec", True)):
                codec.grey_via_ir = route
                blob = codec.compress(rgb=np.repeat(grey[..., None], 3, 2), ir=ir, quality=q)
                assert mmcodec.info(blob)["modalities"][0]["grey_via_ir"] == route
                out = codec.decompress(blob)
                points[name].append((8.0 * mmcodec.info(blob)["stream_bytes"]["rgb"] / grey.size, psnr(out["rgb"], grey)))
        for name in curves:
            curves[name].append(tuple(float(v) for v in np.mean(points[name], axis=0)))
        print(f"q{q}: " + "   ".join(f"{n} {curves[n][-1][0]:.4f} bpp {curves[n][-1][1]:.2f} dB" for n in curves), flush=True)
    a, t = curves["visible codec"], curves["infrared codec"]
    result = bd([r for r, _ in a], [p for _, p in a], [r for r, _ in t], [p for _, p in t])
    print(f"{args.split} ({len(records)} pairs, visible made grey): infrared codec vs visible codec "
          f"BD-rate {result.bd_rate:+.1f} %, BD-PSNR {result.bd_psnr:+.2f} dB")
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "pairs": len(records), "model": args.model,
                                               "weights": codec.installed.weights_hash, "curves": curves,
                                               "bd_rate": result.bd_rate, "bd_psnr": result.bd_psnr}, indent=1) + "\n")


if __name__ == "__main__":
    main()
