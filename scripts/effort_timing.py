"""Issue 20: encode and decode seconds of one pair at each effort level (run on an idle machine).

    .venv/bin/python scripts/effort_timing.py ../shared/data/ir_vi/msrs_subset 00004N --model ir-vi/separate
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mmcodec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import LAYOUTS, detect_kind, find_pairs
from mmcodec.refine import EFFORT_ITERATIONS


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=Path)
    p.add_argument("stem")
    p.add_argument("--model")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--efforts", default=",".join(map(str, EFFORT_ITERATIONS)))
    args = p.parse_args()
    kind = detect_kind(args.folder)
    rec = next(r for r in find_pairs(args.folder) if r.stem == args.stem)
    codec = mmcodec.load(args.model, quality=args.quality, pair=kind)
    images = {m: load_modality(m, rec.paths[m]) for m in codec.modalities}
    codec.encode(images, args.quality)            # warm-up (first-call allocations)
    rows = []
    for effort in map(int, args.efforts.split(",")):
        t0 = time.perf_counter()
        blob = codec.encode(images, args.quality, effort=effort)[0]
        t1 = time.perf_counter()
        codec.decompress(blob)
        t2 = time.perf_counter()
        rows.append({"effort": effort, "iterations": EFFORT_ITERATIONS[effort], "encode_s": round(t1 - t0, 2),
                     "decode_s": round(t2 - t1, 2), "bytes": len(blob)})
        print(json.dumps(rows[-1]), flush=True)
    size = next(iter(images.values()))
    print(f"{codec.name} q{args.quality}, {size.width}x{size.height} pair {args.stem}, layout {LAYOUTS[kind]}")


if __name__ == "__main__":
    main()
