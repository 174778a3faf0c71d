#!/usr/bin/env python
"""Rates of an installed model (forward pass, likelihood bits) vs image size and exposure
(BENCHMARKS.md, "CCEM": the MSRS visible-rate defect).

For one pair, prints y and z bits per pixel of each modality on top-left square crops and on the
whole image (padded to a multiple of 64 by edge replication), with and without the encoder
cross-attention (CCEM only). Likelihoods are clamped at 1e-9 before the log (CompressAI's bound),
and the number of y symbols whose likelihood underflowed to 0 is reported.

With `--gains`, the same 128-px centre crop is instead coded with its visible image multiplied
by each gain (a darker exposure, the IR left alone): this separates brightness from size.

    python scripts/ccem_size_probe.py --model ir-vi/ccem --pair 00055D --sizes 128 256 448
    python scripts/ccem_size_probe.py --model ir-vi/ccem --pair 00055D --gains 1 0.5 0.25 0.125
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import standard_split
from mmcodec.models.registry import find_model


def rates(model, rgb: torch.Tensor, ir: torch.Tensor, quality: int) -> dict:
    pixels = rgb.shape[-2] * rgb.shape[-1]
    with torch.no_grad():
        out = model({"rgb": rgb, "ir": ir}, torch.tensor([quality - 1]))
    row = {}
    for m, lik in out["likelihoods"].items():
        for name, t in lik.items():
            row[f"{m}_{name}_bpp"] = round(float(-t.clamp_min(1e-9).log2().sum() / pixels), 3)
        row[f"{m}_zero_likelihoods"] = int((lik["y"] == 0).sum())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ir-vi/ccem")
    ap.add_argument("--data", default="msrs-subset")
    ap.add_argument("--pair", default="00055D", help="stem of the pair")
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 256, 448])
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--gains", type=float, nargs="*", default=None,
                    help="exposure gains for the visible image of a 128-px centre crop (skips the size sweep)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = Codec(find_model(args.model)).model.eval()
    record = next(r for r in standard_split(args.data) if r.stem == args.pair)
    rgb, ir = (torch.from_numpy(load_modality(m, record.paths[m]).data)[None] for m in ("rgb", "ir"))
    h, w = rgb.shape[-2:]
    if args.gains:
        top, left = (h - 128) // 2, (w - 128) // 2
        crop = (..., slice(top, top + 128), slice(left, left + 128))
        for gain in args.gains:
            print(f"128x128 centre crop, visible x{gain:g}", rates(model, rgb[crop] * gain, ir[crop], args.quality))
        return
    multiple = model.multiple
    pad = (0, (-w) % multiple, 0, (-h) % multiple)
    cases = [(f"{s}x{s} crop", rgb[..., :s, :s], ir[..., :s, :s]) for s in args.sizes]
    cases.append((f"whole {w}x{h} (padded)", F.pad(rgb, pad, mode="replicate"), F.pad(ir, pad, mode="replicate")))
    switches = (True, False) if hasattr(model, "cross_attention") else (None,)
    for label, r, i in cases:
        for cross in switches:
            if cross is not None:
                model.cross_attention = cross
            tag = {True: "cross-attention", False: "no cross-attention", None: ""}[cross]
            print(label, tag, rates(model, r, i, args.quality))


if __name__ == "__main__":
    main()
