"""Issue 20: tune refinement on *training* pairs: mean bpp, PSNR and real RD cost before/after.

    .venv/bin/python scripts/effort_tuning.py ir-vi-train 3 30 --quality 3 --lr 0.01

Arguments: a named split (never a test split), how many pairs (spread over the split), a comma-
separated list of iteration counts. The real RD cost is stream bits / pixels + lambda * 255^2 * MSE
per modality, summed (what Codec.encode compares to keep refined latents or not).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import mmcodec
import mmcodec.refine as refine
from mmcodec.bench.metrics import psnr
from mmcodec.bitstream import unpack
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import standard_split


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("split")
    p.add_argument("pairs", type=int)
    p.add_argument("iterations")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--lr", type=float, default=refine.EFFORT_LEVELS[3].lr)
    p.add_argument("--lr-final", type=float, default=refine.EFFORT_LEVELS[3].lr_final_fraction,
                   help="final step size as a fraction of --lr (cosine decay; 1 = constant)")
    p.add_argument("--tau", default=f"{refine.SGA_TAU_START},{refine.SGA_TAU_END}",
                   help="SGA temperature start,end")
    p.add_argument("--model", default="ir-vi/separate")
    args = p.parse_args()
    refine.SGA_TAU_START, refine.SGA_TAU_END = map(float, args.tau.split(","))
    records = standard_split(args.split)
    records = records[::max(1, len(records) // args.pairs)][:args.pairs]
    codec = mmcodec.load(args.model, quality=args.quality)
    for iterations in map(int, args.iterations.split(",")):
        refine.EFFORT_LEVELS[3] = refine.Schedule(iterations, args.lr, args.lr_final)
        acc: dict[str, list[float]] = {}
        t0 = time.time()
        for r in records:
            images = {m: load_modality(m, r.paths[m]) for m in codec.modalities}
            report: dict = {}
            blob, recon = codec.encode(images, args.quality, effort=3 if iterations else 0, report=report)
            info = unpack(blob).info(len(blob))
            for m in codec.modalities:
                acc.setdefault(f"bpp_{m}", []).append(info["bpp"][m])
                acc.setdefault(f"psnr_{m}", []).append(psnr(images[m].to_integer(), recon[m]))
            acc.setdefault("rd_cost_before", []).append(report.get("rd_cost_before", np.nan))
            acc.setdefault("rd_cost_after", []).append(report.get("rd_cost_after", np.nan))
            acc.setdefault("rd_cost_ratio", []).append(report.get("rd_cost_after", np.nan)
                                                       / report.get("rd_cost_before", np.nan))
        print(iterations, f"lr {args.lr}->{args.lr * args.lr_final:g}", f"tau {args.tau}", f"{(time.time() - t0) / len(records):.2f} s/pair",
              {k: round(float(np.mean(v)), 4) for k, v in acc.items()}, flush=True)


if __name__ == "__main__":
    main()
