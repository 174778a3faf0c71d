"""Complexity of an installed mmcodec model: parameters, MACs per pixel, coding time, peak memory.

Method (also returned in the result under "method"):
- MACs: torch.utils.flop_counter.FlopCounterMode counts FLOPs of the torch operators run by
  `model.forward`, `model.compress` and `model.decompress` on one padded pair; MACs = FLOPs / 2,
  divided by the pixels of one (padded) image, so both modalities count. The rANS coder (C++)
  and Python glue are not counted.
- Time: wall-clock seconds of Codec.compress_images and Codec.decompress (whole pipeline,
  entropy coding included), median of `runs` runs after one warm-up, with the torch thread
  count stated.
- Memory: the measurement runs in a fresh subprocess; peak_rss_mb is its resource high-water
  mark (ru_maxrss) after coding, rss_after_load_mb its resident set (psutil) once the model is
  loaded, and coding_peak_mb their difference (extra memory the coding needs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

METHOD = ("MACs = FlopCounterMode FLOPs / 2 of the whole pair per pixel of one padded image (torch ops "
          "only, entropy coder excluded); times = median wall seconds of Codec.compress_images / Codec.decompress after a "
          "warm-up; memory = fresh subprocess, ru_maxrss high-water mark vs psutil RSS after model load")


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _flops(fn) -> int | None:
    from torch.utils.flop_counter import FlopCounterMode
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - an operator the counter cannot trace: report unknown
        return None


def measure_in_process(model_name: str, paths: dict[str, str], quality: int | None = None,
                       threads: int = 1, runs: int = 5) -> dict[str, Any]:
    """Measure in this process (memory numbers are only meaningful in a fresh process)."""
    import resource

    import psutil

    import mmcodec
    from mmcodec.codec import _padded
    from mmcodec.data.images import load_modality

    torch.set_num_threads(threads)
    codec = mmcodec.load(model_name, quality=quality)
    images = {m: load_modality(m, p) for m, p in paths.items()}
    rss_loaded = psutil.Process().memory_info().rss
    blob = codec.compress_images(images)          # warm-up
    codec.decompress(blob)
    enc, dec = [], []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        blob = codec.compress_images(images)
        t1 = time.perf_counter()
        codec.decompress(blob)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    # ru_maxrss (kilobytes on Linux) comes from lazily updated, per-thread batched counters: it
    # can trail an RSS read a moment earlier by a few hundred kB, so the peak includes those.
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  rss_loaded / 1024, psutil.Process().memory_info().rss / 1024)

    model = codec.model
    first = next(iter(images.values()))
    h, w = _padded(first.height, first.width, model.multiple)
    x = {m: torch.nn.functional.pad(torch.from_numpy(im.data)[None],
                                    (0, w - im.width, 0, h - im.height), mode="replicate")
         for m, im in images.items()}
    rate = codec.quality - 1
    fwd = _flops(lambda: model(x, torch.tensor([rate])))
    compressed = model.compress(x, rate)
    sizes = {m: (h, w) for m in x}
    enc_flops = _flops(lambda: model.compress(x, rate))
    dec_flops = _flops(lambda: model.decompress(compressed.streams, compressed.side, sizes, rate))
    pixels = h * w

    def per_pixel(f: int | None) -> float | None:
        return None if f is None else f / 2 / pixels

    return {
        "model": codec.name, "quality": codec.quality, "weights": codec.installed.weights_hash,
        "image": {m: str(p) for m, p in paths.items()}, "size_hw": [first.height, first.width],
        "padded_hw": [h, w], "params": count_parameters(model),
        "macs_per_pixel": {"forward": per_pixel(fwd), "encode": per_pixel(enc_flops), "decode": per_pixel(dec_flops)},
        "encode_s_median": statistics.median(enc), "decode_s_median": statistics.median(dec),
        "runs": len(enc), "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": peak_kb / 1024, "rss_after_load_mb": rss_loaded / 2**20,
        "coding_peak_mb": max(0.0, peak_kb / 1024 - rss_loaded / 2**20),
        "method": METHOD,
    }


def measure_complexity(model_name: str, paths: dict[str, str | os.PathLike], quality: int | None = None,
                       threads: int = 1, runs: int = 5, timeout: float = 1800) -> dict[str, Any]:
    """Run `measure_in_process` in a fresh Python process and return its result."""
    cmd = [sys.executable, "-m", "mmcodec.bench.complexity", "--model", model_name,
           "--threads", str(threads), "--runs", str(runs)]
    if quality is not None:
        cmd += ["--quality", str(quality)]
    for m, p in paths.items():
        cmd += [f"--{m}", str(Path(p).resolve())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"complexity measurement failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmcodec.bench.complexity")
    p.add_argument("--model", required=True)
    p.add_argument("--quality", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    for m in ("rgb", "ir", "depth"):
        p.add_argument(f"--{m}")
    a = p.parse_args(argv)
    paths = {m: getattr(a, m) for m in ("rgb", "ir", "depth") if getattr(a, m)}
    print(json.dumps(measure_in_process(a.model, paths, a.quality, a.threads, a.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
