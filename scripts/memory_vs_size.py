#!/usr/bin/env python
"""Peak memory and coding time of an installed model vs image size, whole-image and tiled.

Every measurement runs in a fresh process, so its ru_maxrss is that run's high-water mark:
one process reads the pair's PNG files and compresses them (like `mmcodec compress`), another
decodes the stream and writes PNG files (like `mmcodec decompress`). This parent process
imports neither torch nor numpy and makes no images: on Linux a child's ru_maxrss starts at
the high-water mark of the process it was forked from.
    .venv/bin/python scripts/memory_vs_size.py --model ir-vi/separate \\
        --sizes 640x480 1280x1024 2560x1920 4096x3072 --tiles 0 auto 512
`--tiles`: 0 = whole image, auto = the codec's default (tiles of 1024 px above 2 MP), N =
tiles of N pixels. Images are smooth synthetic pairs (content changes bpp, hardly memory or
time), written to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Writes a synthetic pair for the model as PNG files; prints {modality: path}.
WRITE_PAIR = """
import json, sys
from PIL import Image
from mmcodec.data.synthetic import smooth_image
from mmcodec.models.registry import find_model
name, w, h, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
paths = {}
for i, m in enumerate(find_model(name).modalities):
    paths[m] = f"{folder}/{m}_{w}x{h}.png"
    Image.fromarray(smooth_image(h, w, 3 if m == "rgb" else 1, seed=i)).save(paths[m])
print(json.dumps(paths))
"""
# Each child prints one JSON line; times exclude the imports and model loading.
COMPRESS = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
import mmcodec
from mmcodec.data.images import load_modality
name, tile, out, paths = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
codec = mmcodec.load(name, quality=3, tile=None if tile == "auto" else int(tile))
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
blob = codec.compress_images({m: load_modality(m, p) for m, p in paths.items()})
seconds = time.perf_counter() - t
open(out, "wb").write(blob)
print(json.dumps({"seconds": seconds, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "loaded_rss_kb": loaded, "bytes": len(blob), "tiling": mmcodec.info(blob)["tiling"]}))
"""
DECOMPRESS = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
import mmcodec
from mmcodec.codec import codec_for_stream
from mmcodec.bitstream import unpack
from mmcodec.data.images import write_image
stream, out_dir = sys.argv[1], sys.argv[2]
c = unpack(open(stream, "rb").read())
codec = codec_for_stream(c)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
images = codec.decompress(c)
for m, arr in images.items():
    write_image(f"{out_dir}/{m}.png", arr)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "loaded_rss_kb": loaded}))
"""


def _child(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        lines = r.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ir-vi/separate")
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x1024", "2560x1920", "4096x3072"])
    ap.add_argument("--tiles", nargs="+", default=["0", "auto"], help="0, auto or a tile size in pixels")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    rows = []
    print("| size | MP | tiling | compress: peak RSS (GB) | s | decompress: peak RSS (GB) | s | pair bpp |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            paths = _child(WRITE_PAIR, args.model, str(w), str(h), tmp)
            if "error" in paths:
                raise SystemExit(f"cannot write the {size} pair: {paths['error']}")
            for tile in args.tiles:
                stream = folder / "pair.mmc"
                enc = _child(COMPRESS, args.model, tile, str(stream), json.dumps(paths))
                dec = _child(DECOMPRESS, str(stream), tmp) if "error" not in enc else enc
                row = {"size": size, "megapixels": round(w * h / 1e6, 2), "tile": tile, "compress": enc,
                       "decompress": dec}
                rows.append(row)
                if "error" in enc or "error" in dec:
                    print(f"| {size} | {row['megapixels']} | {tile} | failed: {enc.get('error') or dec.get('error')} |",
                          flush=True)
                    continue
                t = enc["tiling"]
                tiling = f"{t['tile_pixels']} px tiles, halo {t['halo_pixels']}" if t else "whole image"
                print(f"| {size} | {row['megapixels']} | {tiling} | {enc['peak_rss_kb'] / 2**20:.2f} | "
                      f"{enc['seconds']:.1f} | {dec['peak_rss_kb'] / 2**20:.2f} | {dec['seconds']:.1f} | "
                      f"{8 * enc['bytes'] / (w * h):.4f} |", flush=True)
                stream.unlink(missing_ok=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    loaded = [r["compress"]["loaded_rss_kb"] for r in rows if "loaded_rss_kb" in r["compress"]]
    if loaded:
        print(f"\nRSS after importing torch and loading the model: {min(loaded) / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
