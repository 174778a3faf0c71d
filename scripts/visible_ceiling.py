#!/usr/bin/env python
"""Where does a joint model's visible-PSNR ceiling come from? (issue 22)

For each ir-vi model, the visible and infrared PSNR and the file bytes at qualities 1 and 4 on:
night pairs of the validation split (msrs-subset, names ending in N: unseen cameras, never a
test split), the same pairs upsampled 2x (1280x960: big images, as in the report of the
ceiling), and a synthetic dark noisy image (a validation day pair scaled by 0.15 plus
Gaussian sensor noise, sigma 4 code values). Also the RGB PSNR that the YUV 4:2:0 round trip
alone allows (CCEM codes 4:2:0), i.e. the most CCEM's colour path could reach.

    python scripts/visible_ceiling.py --json results/visible_ceiling.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import mmcodec
from mmcodec.data.pairs import data_root
from mmcodec.models.ccem import rgb_to_yuv420, yuv420_to_rgb


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


def yuv420_ceiling(rgb: np.ndarray) -> float:
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    x = torch.from_numpy(rgb[:h, :w]).permute(2, 0, 1)[None].float() / 255
    back = (yuv420_to_rgb(*rgb_to_yuv420(x)).clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
    return psnr(rgb[:h, :w], back)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="ir-vi/separate,ir-vi/ccem,ir-vi/lu2022")
    ap.add_argument("--night", default="00004N,00858N", help="msrs-subset stems")
    ap.add_argument("--day", default="00633D", help="msrs-subset stem darkened for the synthetic image")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = data_root() / "ir_vi" / "msrs_subset"

    def pair(stem: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.array(Image.open(root / "vi" / f"{stem}.png").convert("RGB")),
                np.array(Image.open(root / "ir" / f"{stem}.png").convert("L")))

    inputs = {}
    for stem in args.night.split(","):
        vi, ir = pair(stem)
        inputs[stem] = (vi, ir)
        big = (vi.shape[1] * 2, vi.shape[0] * 2)
        inputs[f"{stem}-x2"] = (np.array(Image.fromarray(vi).resize(big, Image.BICUBIC)),
                                np.array(Image.fromarray(ir).resize(big, Image.BICUBIC)))
    vi, ir = pair(args.day)
    noise = np.random.default_rng(0).normal(0, 4, vi.shape)
    inputs[f"{args.day}-dark-noisy"] = (np.clip(vi * 0.15 + noise, 0, 255).round().astype(np.uint8), ir)

    rows = []
    for name, (vi, ir) in inputs.items():
        row = {"input": name, "size": f"{vi.shape[1]}x{vi.shape[0]}", "mean_vi": round(float(vi.mean()), 1),
               "yuv420_ceiling_db": round(yuv420_ceiling(vi), 2), "models": {}}
        for model in args.models.split(","):
            for q in (1, 4):
                codec = mmcodec.load(model, quality=q)
                blob = codec.compress(rgb=vi, ir=ir)
                out = codec.decompress(blob)
                row["models"][f"{model} q{q}"] = {"psnr_vi": round(psnr(vi, out["rgb"]), 2),
                                                  "psnr_ir": round(psnr(ir, out["ir"]), 2), "bytes": len(blob)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
