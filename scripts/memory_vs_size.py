#!/usr/bin/env python
"""Peak memory and coding time of an installed model vs image size (issue 7 table).

Each size runs in a fresh process (so ru_maxrss is that size's high-water mark):
    .venv/bin/python scripts/memory_vs_size.py --model ir-vi/separate --sizes 640x480 1280x1024 2560x1920
Images are smooth synthetic pairs (the content changes bpp, hardly memory or time).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CHILD = """
import json, resource, sys, time
import numpy as np, torch
import mmcodec
sys.path.insert(0, "tests")
from conftest import smooth_image
torch.set_num_threads(1)
name, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
codec = mmcodec.load(name, quality=3)
mods = {m: smooth_image(h, w, 3 if m == "rgb" else 1, seed=i) for i, m in enumerate(codec.modalities)}
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter(); blob = codec.compress(**mods); enc = time.perf_counter() - t
t = time.perf_counter(); codec.decompress(blob); dec = time.perf_counter() - t
print(json.dumps({"size": f"{w}x{h}", "megapixels": round(w * h / 1e6, 2), "encode_s": round(enc, 2),
                  "decode_s": round(dec, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                  "rss_after_load_gb": round(rss_loaded / 1024, 2), "bytes": len(blob)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ir-vi/separate")
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x1024", "2560x1920"])
    args = ap.parse_args()
    print("| size | megapixels | peak RSS (GB) | encode (s) | decode (s) |\n|---|---|---|---|---|")
    for size in args.sizes:
        w, h = size.split("x")
        r = subprocess.run([sys.executable, "-c", CHILD, args.model, w, h], capture_output=True, text=True)
        if r.returncode:
            print(f"| {size} | failed: {r.stderr.strip().splitlines()[-1]} |")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {d['size']} | {d['megapixels']} | {d['peak_rss_gb']} | {d['encode_s']} | {d['decode_s']} |")


if __name__ == "__main__":
    main()
