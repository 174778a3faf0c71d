#!/usr/bin/env python
"""Does a trained pair model's rate depend on how large the image is? Estimate it per size.

Runs each model's forward pass (likelihood bits, not a bitstream: this is a diagnostic) on
centred square crops of test pairs and on the whole padded image, and prints bits per pixel of
each likelihood (y, z) per modality. A model that learned the statistics of its training crops'
borders rather than of images (hyper-latent of 1x1 on 64-px crops for LIC-TCM) shows rates
that grow with the crop size; a healthy one stays roughly flat.

    python scripts/context_size_probe.py runs/rgb-d-separate runs/rgb-d-separate-plus \\
        --data rgbdd-test --pairs 5 --quality 2 --sizes 64,128,256
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import standard_split
from mmcodec.models.registry import read_manifest


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories holding model/<name>.json")
    ap.add_argument("--data", default="rgbdd-test")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--sizes", default="64,128,256")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sizes: list[int | None] = [int(s) for s in args.sizes.split(",")] + [None]
    records = standard_split(args.data)[:args.pairs]
    print("| model | modality | " + " | ".join(f"{s} px" if s else "whole image" for s in sizes) + " |")
    print("|---|---|" + "---:|" * len(sizes))
    for run in args.runs:
        codec = Codec(read_manifest(next(Path(run, "model").glob("*.json"))), quality=args.quality)
        model = codec.model.eval()
        # modality -> size -> [bits, pixels]
        total: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
        for rec in records:
            x = codec.model_inputs({m: load_modality(m, rec.paths[m]) for m in codec.modalities})
            for size in sizes:
                xs = x if size is None else {m: centre_crop(t, size) for m, t in x.items()}
                with torch.no_grad():
                    out = model(xs, torch.tensor([args.quality - 1]))
                for m, lk in out["likelihoods"].items():
                    parts = lk.values() if isinstance(lk, dict) else lk
                    bits = sum(float(-torch.log2(p.clamp_min(1e-30)).sum()) for p in parts)
                    total[m][size][0] += bits
                    total[m][size][1] += xs[m].shape[-2] * xs[m].shape[-1]
        for m, per in total.items():
            cells = " | ".join(f"{per[s][0] / per[s][1]:.4f}" for s in sizes)
            print(f"| {Path(run).name} | {m} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
