"""Compare video models on a fixed, seeded sample of training clips (issue 25's ship check).

The video test sequences are for reporting only, so whether continued weights replace the shipped
ones is judged here: the same clips, crops and I-frames for every model, per rate point, in eval
mode (rounded latents), giving the mean bpp per P-frame and modality, the PSNR and the RD loss.

    python scripts/video_train_check.py ir-vi-video/separate runs/vship-sep/ir-vi-video__separate.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mmcodec.models.registry import find_model, read_manifest
from mmcodec.video.fvc import VideoPairModel
from mmcodec.video.registry import find_video_model, load_video_model
from mmcodec.video.train import DEFAULTS, ClipSampler, _data_root, build_cache, clip_loss


def load_any(spec: str) -> tuple[str, VideoPairModel, dict]:
    inst = read_manifest(Path(spec)) if spec.endswith(".json") else find_video_model(spec)
    return f"{inst.name} ({spec})", load_video_model(inst), inst.budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="installed video model names or manifest paths")
    ap.add_argument("--batches", type=int, default=6, help="batches of 2 clips per rate point")
    ap.add_argument("--frames", type=int, default=5, help="frames per clip (1 I-frame + P-frames)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clips = build_cache(_data_root() / DEFAULTS["data"], Path("runs/video_cache"), DEFAULTS["max_frames_per_clip"])
    image = find_model(DEFAULTS["iframe_model"]).load()
    out = {}
    for spec in args.models:
        name, model, budget = load_any(spec)
        lams = torch.tensor(budget.get("lambdas", DEFAULTS["lambdas"]))
        sampler = ClipSampler(clips, args.crop, (args.frames, args.frames), args.seed)   # same clips per model
        rows = []
        for rate in range(model.num_rates):
            acc = []
            for _ in range(args.batches):
                clip = sampler.batch(2, args.frames)
                r = torch.full((2,), rate)
                with torch.no_grad():
                    loss, stats = clip_loss(model, image, clip, r, lams[r], motion_only=False)
                acc.append({"loss": float(loss), **stats})
            mean = {k: float(np.mean([a[k] for a in acc])) for k in acc[0]}
            mean.update({f"psnr_{m}": float(np.mean([10 * np.log10(1 / a[f"mse_{m}"]) for a in acc])) for m in ("rgb", "ir")})
            rows.append(mean)
            print(f"{name} q{rate + 1}: loss {mean['loss']:.4f}  rgb {mean['bpp_rgb']:.4f} bpp {mean['psnr_rgb']:.2f} dB"
                  f"  ir {mean['bpp_ir']:.4f} bpp {mean['psnr_ir']:.2f} dB", flush=True)
        out[name] = {"steps": budget.get("steps"), "rows": rows, "mean_loss": float(np.mean([r["loss"] for r in rows]))}
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "models": out}, indent=1))


if __name__ == "__main__":
    main()
