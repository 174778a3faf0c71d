#!/usr/bin/env python
"""Seconds per training step of a codec under speed options (recipe study, issue 8).

The codec is the IR study codec (N=64, M=96) unless `--config` names a training config,
whose model (arch + kwargs) and modalities are used instead (e.g. the LIC-TCM RGB-D
baseline, configs/rgb-d-separate.json). Inputs are uniform noise of the configured size.

Measures the step `mmcodec train` runs (forward, RD loss, backward, clipping, Adam, aux
step) for: plain fp32; bf16 autocast (mixed precision on the CPU); `torch.compile` of the
model; batch 16 instead of 8 (per-sample cost). All variants are timed round-robin in one
process on the same batches, so background load affects them alike; the result is the
median over rounds after warm-up. A speed option only earns an RD arm in the study if it
makes a step cheaper.

    python scripts/step_speed.py --crop 128 --rounds 12 --json results/step_speed.json
    python scripts/step_speed.py --config configs/rgb-d-separate.json --skip-compile --rounds 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from mmcodec.modalities import CHANNELS
from mmcodec.models.registry import build_model
from mmcodec.train.config import load_config
from mmcodec.train.loss import rd_loss
from mmcodec.train.precision import bf16_forward
from mmcodec.train.trainer import optimisation_step


def make_step(model, modalities: list[str], autocast: bool, lambdas: torch.Tensor):
    params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(params, 1e-4)
    aux_opt = torch.optim.Adam(aux_params, 1e-3)
    forward = bf16_forward(model, torch.device("cpu")) if autocast else model   # the trainer's bf16 path

    def step(batch: dict[str, torch.Tensor], rate: torch.Tensor) -> float:
        x = {m: batch[m] for m in modalities}
        start = time.perf_counter()
        out = forward(x, rate)
        loss = rd_loss(out, x, lambdas[rate])["loss"]
        optimisation_step(model, loss, params, aux_params, opt, aux_opt, clip=1.0)
        return time.perf_counter() - start

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--config", help="training config whose model to time (default: the IR study codec)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.config:
        cfg = load_config(args.config)
        arch, kwargs, modalities, lambdas = cfg.arch, cfg.kwargs, list(cfg.modalities), torch.tensor(cfg.lambdas)
    else:
        arch, kwargs, modalities = "separate", {"modalities": ["ir"], "N": 64, "M": 96, "num_rates": 4}, ["ir"]
        lambdas = torch.tensor([0.0018, 0.0043, 0.0104, 0.025])

    variants = {}
    for name, batch, autocast, compiled in [("fp32, batch 8", 8, False, False),
                                            ("bf16 autocast, batch 8", 8, True, False),
                                            ("torch.compile, batch 8", 8, False, True),
                                            ("fp32, batch 16", 16, False, False)]:
        if compiled and args.skip_compile:
            continue
        torch.manual_seed(0)
        model = build_model(arch, kwargs).train()
        if compiled:
            model.forward = torch.compile(model.forward)   # the step's forward/backward graph
        step = make_step(model, modalities, autocast, lambdas)
        variants[name] = (step, batch)

    times: dict[str, list[float]] = {k: [] for k in variants}
    errors: dict[str, str] = {}
    gen = torch.Generator().manual_seed(0)
    for r in range(args.warmup + args.rounds):
        x16 = {m: torch.rand(16, CHANNELS[m], args.crop, args.crop, generator=gen) for m in modalities}
        rate16 = torch.randint(len(lambdas), (16,), generator=gen)
        for name, (step, batch) in variants.items():
            if name in errors:
                continue
            try:
                t = step({m: v[:batch] for m, v in x16.items()}, rate16[:batch])
            except Exception as e:  # noqa: BLE001 - report why an option is unusable here
                errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            if r >= args.warmup:
                times[name].append(t)
    rows = []
    base = statistics.median(times["fp32, batch 8"])
    for name, (_, batch) in variants.items():
        if name in errors:
            rows.append({"variant": name, "error": errors[name]})
            print(f"| {name} | failed: {errors[name]} |")
            continue
        med = statistics.median(times[name])
        per_sample = med / batch
        rows.append({"variant": name, "seconds_per_step": round(med, 4), "ms_per_sample": round(1000 * per_sample, 2),
                     "relative_per_sample": round(per_sample / (base / 8), 3)})
        print(f"| {name} | {med:.3f} s/step | {1000 * per_sample:.1f} ms/sample | x{per_sample / (base / 8):.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config, "crop": args.crop, "threads": args.threads, "rounds": args.rounds, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
