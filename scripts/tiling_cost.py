#!/usr/bin/env python
"""Rate-distortion cost of tiled coding vs whole-image coding, and a seam check.

RoadScene test pairs (the first --pairs of the CDDFuse-50 split) are upscaled bicubically to
--size, so that several tiles cover a real-looking image, and coded at every rate point
whole (--tile 0) and tiled. Per modality and quality: bpp (stream bytes) and PSNR of both,
and where the two reconstructions differ, split into pixels next to a tile border (within
the halo, 32 px) and the rest. A control decodes the same streams with the tiles but no halo: the
seams that tiling without context would leave.
    .venv/bin/python scripts/tiling_cost.py --size 1280x1024 --tile 512
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import mmcodec
from mmcodec.bench.metrics import psnr
from mmcodec.bitstream import unpack
from mmcodec.data.images import denormalise, load_modality, read_image
from mmcodec.data.pairs import data_root, find_pairs
from mmcodec.tiling import LATENT_STRIDE, Tiling, tile_spans


def upscaled(path: Path, w: int, h: int) -> np.ndarray:
    arr = read_image(path)
    if arr.ndim == 3 and (arr == arr[..., :1]).all():
        arr = arr[..., 0]  # grey stored as RGB
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BICUBIC))


def border_mask(h: int, w: int, tile_pixels: int, band: int) -> np.ndarray:
    """True within `band` pixels of a border between two tiles."""
    mask = np.zeros((h, w), bool)
    for axis, length in ((0, h), (1, w)):
        for start, _ in tile_spans(-(-length // LATENT_STRIDE), tile_pixels // LATENT_STRIDE)[1:]:
            edge = start * LATENT_STRIDE
            if axis == 0:
                mask[max(edge - band, 0):edge + band] = True
            else:
                mask[:, max(edge - band, 0):edge + band] = True
    return mask


def decode_with(codec: mmcodec.Codec, blob: bytes, tiling: Tiling) -> dict[str, np.ndarray]:
    """Decode `blob` with another tiling than the stream's (the control; no CRC check)."""
    c = unpack(blob)
    infos = {i.name: i for i in c.modalities}
    sizes = {m: (-(-i.height // 64) * 64, -(-i.width // 64) * 64) for m, i in infos.items()}
    with torch.no_grad():
        x_hat = codec.model.decompress(c.streams, c.side, sizes, c.quality - 1, tiling=tiling)
    return {m: denormalise(t[0, :, :infos[m].height, :infos[m].width].numpy(), infos[m].bit_depth,
                           infos[m].channels, infos[m].value_range, infos[m].holes) for m, t in x_hat.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ir-vi/separate")
    ap.add_argument("--size", default="1280x1024")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    root = data_root() / "ir_vi" / "roadscene"
    records = find_pairs(root, root / "split_test_cddfuse50.txt")[:args.pairs]
    whole_codec = mmcodec.load(args.model, tile=0)
    tiled_codec = mmcodec.load(args.model, tile=args.tile)
    # The band a missing halo can reach: the synthesis' receptive reach on either side.
    band = tiled_codec.model.synthesis_halo() * LATENT_STRIDE
    mask = border_mask(h, w, args.tile, band)
    print(f"{args.model}, {len(records)} RoadScene test pair(s) ({', '.join(r.stem for r in records)}) "
          f"upscaled to {w}x{h}, tiles of up to {args.tile} px; {mask.mean():.1%} of the pixels are within "
          f"{band} px of a tile border\n")
    print("| quality | modality | bpp whole | bpp tiled | PSNR whole (dB) | PSNR tiled (dB) | pixels differing "
          "| max abs diff at borders / elsewhere | control without halo: at borders / elsewhere |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for quality in whole_codec.installed.qualities:
        rows: dict[str, dict[str, list[float]]] = {}
        for r in records:
            originals = {m: upscaled(p, w, h) for m, p in r.paths.items()}
            images = {m: load_modality(m, a) for m, a in originals.items()}
            whole_blob, whole = whole_codec.encode(images, quality)
            tiled_blob, tiled = tiled_codec.encode(images, quality)
            decoded = tiled_codec.decompress(tiled_blob)  # raises unless equal to `tiled` (CRC)
            c = unpack(tiled_blob)
            no_halo = decode_with(tiled_codec, tiled_blob, Tiling(c.tiling.tile, 0))
            for m in images:
                assert np.array_equal(decoded[m], tiled[m])
                diff = np.abs(whole[m].astype(int) - tiled[m].astype(int))
                ctrl = np.abs(whole[m].astype(int) - no_halo[m].astype(int))
                if diff.ndim == 3:
                    diff, ctrl = diff.max(2), ctrl.max(2)
                bits = {k: 8 * sum(map(len, unpack(b).streams[m])) / (w * h) for k, b in
                        (("whole", whole_blob), ("tiled", tiled_blob))}
                row = rows.setdefault(m, {})
                for key, value in (("bpp_whole", bits["whole"]), ("bpp_tiled", bits["tiled"]),
                                   ("psnr_whole", psnr(originals[m], whole[m])),
                                   ("psnr_tiled", psnr(originals[m], tiled[m])),
                                   ("differing", float((diff > 0).mean())),
                                   ("max_border", diff[mask].max()), ("max_elsewhere", diff[~mask].max()),
                                   ("ctrl_border", ctrl[mask].max()), ("ctrl_elsewhere", ctrl[~mask].max())):
                    row.setdefault(key, []).append(float(value))
        for m, row in rows.items():
            mean = {k: float(np.mean(v)) for k, v in row.items()}
            peak = {k: int(max(v)) for k, v in row.items() if k.startswith(("max", "ctrl"))}
            print(f"| {quality} | {m} | {mean['bpp_whole']:.4f} | {mean['bpp_tiled']:.4f} | {mean['psnr_whole']:.3f} | "
                  f"{mean['psnr_tiled']:.3f} | {mean['differing']:.4%} | {peak['max_border']} / {peak['max_elsewhere']} "
                  f"| {peak['ctrl_border']} / {peak['ctrl_elsewhere']} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
