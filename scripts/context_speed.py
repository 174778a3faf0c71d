#!/usr/bin/env python
"""Encode/decode seconds of the context study's IR codecs on one 640x480 MSRS infrared image.

    MMCODEC_MODEL_PATH=runs/study/ctx-hyperprior/model:runs/study/ctx-checkerboard/model:runs/study/ctx-autoregressive/model \\
        python scripts/context_speed.py ir/ctx-hyperprior ir/ctx-checkerboard ir/ctx-autoregressive

Median of 3 after a warm-up, quality 3, one torch thread (coding always runs single-threaded).
"""
from __future__ import annotations

import statistics
import sys
import time

import torch

import mmcodec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import data_root


def main() -> None:
    torch.set_num_threads(1)
    path = data_root() / "ir_vi" / "msrs_subset" / "ir" / "00004N.png"
    image = load_modality("ir", path)
    print(f"{path.name} {image.width}x{image.height}, quality 3, 1 thread, median of 3")
    print("| model | encode (s) | decode (s) | bytes |\n|---|---|---|---|")
    for name in sys.argv[1:]:
        codec = mmcodec.load(name, quality=3)
        blob = codec.compress_images({"ir": image})
        codec.decompress(blob)
        enc, dec = [], []
        for _ in range(3):
            t = time.perf_counter(); blob = codec.compress_images({"ir": image}); enc.append(time.perf_counter() - t)
            t = time.perf_counter(); codec.decompress(blob); dec.append(time.perf_counter() - t)
        print(f"| {name} | {statistics.median(enc):.2f} | {statistics.median(dec):.2f} | {len(blob)} |")


if __name__ == "__main__":
    main()
