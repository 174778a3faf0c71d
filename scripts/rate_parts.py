#!/usr/bin/env python
"""Where the bits go: bytes of each part of real .mmc files, per model, quality and modality.

Codes every pair of a split with each model at every quality and splits each written file into
its parts: the latent y (all its slices), the hyper-latent z, the model's side information (Lu
et al.'s gamma/beta) and the container overhead (header, sizes, CRCs). Prints bpp per part, the
share of z in each modality's stream, and for every model after the first the per-part change
against the first (issue 22, item 5: which part a joint model saves on).

    python scripts/rate_parts.py --models ir-vi/separate,ir-vi/lu2022,ir-vi/ccem --split msrs-subset --every 2
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from mmcodec.bench.metrics import PRIMARY_METRIC, modality_metrics
from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import split_records
from mmcodec.latent_codecs.channel_slice import SliceLoopCodec
from mmcodec.models.registry import find_model, read_manifest


def part_names(codec: Codec, modality: str, count: int) -> list[str]:
    """Name each byte string of a modality's stream "y" or "z" (the order its latent codec writes)."""
    if isinstance(codec.model.modality_latent_codec(modality), SliceLoopCodec):
        return ["z"] + ["y"] * (count - 1)          # hyper-latent first, then the channel slices
    if count == 2:
        return ["y", "z"]                           # mean-scale hyperprior: latent, then hyper-latent
    raise SystemExit(f"{codec.name}: do not know the parts of a {count}-string {modality} stream")


def measure(codec: Codec, split: str, every: int) -> dict:
    """quality -> part ("rgb:y", "ir:z", "side", "overhead") -> mean bpp over the split's pairs, and
    "<modality>:psnr" -> mean PSNR (dB; RGB PSNR for visible)."""
    sums: dict = defaultdict(lambda: defaultdict(float))
    records = split_records(split)[::every]
    for rec in tqdm(records, desc=f"{codec.name} on {split}", leave=False):
        images = {m: load_modality(m, rec.paths[m]) for m in codec.modalities}
        pixels = max(im.height * im.width for im in images.values())   # bpp per image, as the bench counts
        for q in codec.installed.qualities:
            blob, decoded = codec.encode(images, q)
            c = unpack(blob)
            for m in codec.modalities:
                metric = PRIMARY_METRIC[m]
                sums[q][f"{m}:psnr"] += modality_metrics(m, images[m].to_integer(), decoded[m], msssim=False)[metric]
            counted = len(c.side)
            sums[q]["side"] += 8 * len(c.side) / pixels
            for m, strings in c.streams.items():
                for name, s in zip(part_names(codec, m, len(strings)), strings):
                    sums[q][f"{m}:{name}"] += 8 * len(s) / pixels
                    counted += len(s)
            sums[q]["overhead"] += 8 * (len(blob) - counted) / pixels
    return {q: {k: v / len(records) for k, v in parts.items()} for q, parts in sums.items()}


def table(results: dict[str, dict], modalities: list[str]) -> str:
    parts_order = [f"{m}:{p}" for m in modalities for p in ("y", "z")] + ["side", "overhead"]
    first = next(iter(results))
    lines = ["| model | q | " + " | ".join(parts_order) + " | z share: " + " / ".join(modalities)
             + " | PSNR: " + " / ".join(modalities) + " | change vs " + first + " |",
             "|---|---:|" + "---:|" * (len(parts_order) + 3)]
    for name, per_q in results.items():
        for q, parts in per_q.items():
            cells = [f"{parts.get(p, 0.0):.4f}" for p in parts_order]
            shares = [f"{100 * parts[f'{m}:z'] / (parts[f'{m}:y'] + parts[f'{m}:z']):.1f} %" for m in modalities]
            psnrs = " / ".join(f"{parts[f'{m}:psnr']:.2f}" for m in modalities)
            change = ""
            if name != first:
                base = results[first][q]
                change = ", ".join(f"{p} {100 * (parts.get(p, 0.0) - base.get(p, 0.0)) / max(base.get(p, 0.0), 1e-9):+.1f} %"
                                   for p in parts_order if base.get(p, 0.0) > 0)
            lines.append(f"| {name} | {q} | " + " | ".join(cells) + f" | {' / '.join(shares)} | {psnrs} | {change} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="comma-separated installed names or manifests (the first is the reference)")
    ap.add_argument("--split", default="msrs-subset")
    ap.add_argument("--every", type=int, default=1, help="use every k-th pair of the split")
    ap.add_argument("--json", help="write the per-part means here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {}
    for spec in args.models.split(","):
        codec = Codec(read_manifest(Path(spec)) if spec.endswith(".json") else find_model(spec))
        results[codec.name] = measure(codec, args.split, args.every)
    print(f"bpp per part on {args.split} (every {args.every}th pair), real .mmc files; PSNR of the decoded images\n")
    print(table(results, list(codec.modalities)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"split": args.split, "every": args.every, "bpp": results}, indent=1))


if __name__ == "__main__":
    main()
