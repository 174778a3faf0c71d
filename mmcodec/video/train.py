"""Training of the video models (`mmcodec train --config configs/ir-vi-video-*.json`).

Random clips of 2-5 frames from paired videos (decoded once to a uint8 cache under the run's
folder; the data stay outside the repository), one random aligned crop per clip (the same
window and flip in both modalities and every frame). Frame 0 is the I-frame, reconstructed by
the frozen shipped image pair codec at the clip's rate; the P-frames follow, each referencing
the previous reconstructions (detached: memory stays one frame deep).

Staged as in FVC: for the first `motion_steps` the loss is the motion stage's (motion rate +
lambda * distortion of the motion-compensated prediction, one P-frame); afterwards the full
RD loss summed over every P-frame of the clip.

Variable rate: gain units (one gain vector per rate point on the motion and the residual
latent); each clip draws a rate index, its lambda is `lambdas[rate]` and its I-frame is coded
at the image codec's quality rate+1, so a stream's quality Q means the same for both.
Checkpoints every `checkpoint_every` steps (atomic); `resume` continues from the last one.
`init_from` (an installed video model's name) starts a new run from shipped weights instead:
its steps and CPU-hours count into the budget (the optimiser starts afresh), so the shipped
manifest states the model's whole training.
"""
from __future__ import annotations

import json
import os
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcodec.errors import BadInputError
from mmcodec.files import atomic_output, atomic_write
from mmcodec.video.fvc import CrossContext, VideoPairModel
from mmcodec.data.frames import VIDEO_SUFFIXES, read_sequence

DEFAULTS: dict[str, Any] = {
    "kind": "video", "arch": "separate", "kwargs": {}, "iframe_model": "ir-vi/separate",
    "data": "video_ir_vi/m3svd_clips", "max_frames_per_clip": 200, "crop": 128, "batch": 2,
    "clip_frames": [2, 5], "steps": 1000, "motion_steps": 200, "lr": 3e-4, "aux_lr": 1e-3,
    "lambdas": [0.0018, 0.0043, 0.0104, 0.025], "seed": 0, "threads": 1, "checkpoint_every": 50,
    "log_every": 25, "out": "runs/ir-vi-video", "ledger": None, "ship_to": None, "default": False,
    "description": "", "max_minutes": None, "init_from": None,
}


def load_video_config(path: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    cfg = {**DEFAULTS, **json.loads(Path(path).read_text())}
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key not in cfg:
            raise BadInputError(f"unknown config key {key!r}")
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value
    return cfg


def is_video_config(path: str | os.PathLike) -> bool:
    try:
        return json.loads(Path(path).read_text()).get("kind") == "video"
    except (OSError, ValueError, AttributeError):
        return False


def _data_root() -> Path:
    from mmcodec.data.pairs import data_root
    return data_root()


def build_cache(clips_dir: Path, cache: Path, max_frames: int | None) -> list[dict[str, np.ndarray]]:
    """Decode every clip pair (vi/<clip>.mp4 + ir/<clip>.mp4) once into .npy files under
    `cache`; return memory maps {"rgb": (T, H, W, 3), "ir": (T, H, W)} per clip."""
    cache.mkdir(parents=True, exist_ok=True)
    clips = sorted(p for p in (clips_dir / "vi").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise BadInputError(f"no clips in {clips_dir}/vi")
    out = []
    for clip in clips:
        arrays = {}
        for m, sub in (("rgb", "vi"), ("ir", "ir")):
            target = cache / f"{clip.stem}_{sub}_{max_frames}.npy"
            if not target.is_file():
                frames = np.stack(read_sequence(clips_dir / sub / clip.name, m, max_frames))
                with atomic_output(target) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, frames)
            arrays[m] = np.load(target, mmap_mode="r")
        n = min(len(arrays["rgb"]), len(arrays["ir"]))
        out.append({m: a[:n] for m, a in arrays.items()})
    return out


class ClipSampler:
    def __init__(self, clips: list[dict[str, np.ndarray]], crop: int, frames: tuple[int, int], seed: int) -> None:
        self.clips, self.crop, self.frames = clips, crop, frames
        self.rng = random.Random(seed)

    def batch(self, size: int, length: int) -> dict[str, torch.Tensor]:
        """(B, T, C, H, W) float tensors in [0, 1] per modality."""
        out: dict[str, list[np.ndarray]] = {"rgb": [], "ir": []}
        for _ in range(size):
            clip = self.rng.choice([c for c in self.clips if len(c["rgb"]) >= length])
            t0 = self.rng.randrange(len(clip["rgb"]) - length + 1)
            h, w = clip["rgb"].shape[1:3]
            y, x = self.rng.randrange(h - self.crop + 1), self.rng.randrange(w - self.crop + 1)
            flip = self.rng.random() < 0.5
            for m in out:
                a = np.asarray(clip[m][t0:t0 + length, y:y + self.crop, x:x + self.crop])
                if a.ndim == 3:
                    a = a[..., None]
                if flip:
                    a = a[:, :, ::-1]
                out[m].append(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
        return {m: torch.from_numpy(np.stack(v)).float().div_(255.0) for m, v in out.items()}


def _bits(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample bits of a dict of likelihood tensors."""
    return sum(-torch.log2(l.clamp_min(1e-9)).flatten(1).sum(1) for l in likelihoods.values())


def clip_loss(model: VideoPairModel, image_model: torch.nn.Module, clip: dict[str, torch.Tensor],
              rate: torch.Tensor, lam: torch.Tensor, motion_only: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """RD loss of one batch of clips: sum over P-frames and modalities of bpp + lambda*255^2*MSE."""
    B, T = clip["rgb"].shape[:2]
    pixels = clip["rgb"].shape[-1] * clip["rgb"].shape[-2]
    with torch.no_grad():     # the frozen image pair codec's I-frame at the clip's rate
        image_model.eval()
        intra = image_model({m: clip[m][:, 0] for m in ("rgb", "ir")}, rate)["x_hat"]
    previous = {m: [intra[m].clamp(0, 1)] for m in ("ir", "rgb")}
    loss = torch.zeros(())
    stats = {"bpp_ir": 0.0, "bpp_rgb": 0.0, "mse_ir": 0.0, "mse_rgb": 0.0}
    frames = 2 if motion_only else T
    for t in range(1, frames):
        cross = None
        for m in ("ir", "rgb"):
            codec = model.codecs[m]
            refs = [codec.features(r) for r in previous[m][-1:-3:-1]]
            out = codec(clip[m][:, t], refs, previous[m][-1], rate, cross if m == "rgb" else None,
                        motion_only=motion_only)
            if m == "ir" and model.cross:
                cross = CrossContext(out["features"], out["stages"])
            bpp = _bits(out["likelihoods"]) / pixels
            mse = ((out["x_hat"] - clip[m][:, t]) ** 2).flatten(1).mean(1)
            loss = loss + (bpp + lam * 255.0 ** 2 * mse).mean()
            stats[f"bpp_{m}"] += bpp.detach().mean().item() / (frames - 1)
            stats[f"mse_{m}"] += mse.detach().mean().item() / (frames - 1)
            previous[m].append(out["x_hat"].detach().clamp(0, 1))
    return loss / (frames - 1), stats


def _split_parameters(model: torch.nn.Module) -> tuple[list, list]:
    main, aux = [], []
    for name, p in model.named_parameters():
        (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def init_from_shipped(model: VideoPairModel, cfg: dict[str, Any]) -> dict[str, Any]:
    """Load the installed video model `cfg["init_from"]` into `model`; return its lineage
    (name, weights hash, steps, CPU- and wall-hours, I-frame weights it trained with)."""
    from mmcodec.models.registry import load_weights
    from mmcodec.video.registry import find_video_model
    shipped = find_video_model(cfg["init_from"])
    if shipped.arch != cfg["arch"] or dict(shipped.kwargs) != dict(cfg["kwargs"]):
        raise BadInputError(f"init_from {shipped.name!r} is {shipped.arch} {shipped.kwargs}, "
                            f"not the config's {cfg['arch']} {cfg['kwargs']}")
    load_weights(model, shipped.weights_path)
    b = shipped.budget or {}
    return {"name": shipped.name, "weights": shipped.weights_hash, "steps": int(b.get("steps", 0)),
            "cpu_hours": float(b.get("cpu_hours", 0.0)), "wall_hours": float(b.get("wall_hours", 0.0)),
            "iframe_weights": b.get("iframe_weights")}


def train_video(cfg: dict[str, Any], resume: bool = False, progress: bool = True) -> dict[str, Any]:
    from mmcodec.models.registry import find_model
    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    out_dir = Path(cfg["out"])
    model = VideoPairModel(cfg["arch"], **cfg["kwargs"])
    if model.num_rates != len(cfg["lambdas"]):
        raise BadInputError(f"{len(cfg['lambdas'])} lambdas for a model of {model.num_rates} rates")
    image = find_model(cfg["iframe_model"])
    image_model = image.load()
    for p in image_model.parameters():
        p.requires_grad_(False)
    main, aux = _split_parameters(model)
    opt = torch.optim.Adam(main, lr=cfg["lr"])
    aux_opt = torch.optim.Adam(aux, lr=cfg["aux_lr"])
    step, cpu_used, wall_used = 0, 0.0, 0.0
    ckpt = out_dir / "checkpoint.pt"
    sampler_seed = cfg["seed"]
    start = None
    if cfg.get("init_from") and not (resume and ckpt.is_file()):
        start = init_from_shipped(model, cfg)
        step, cpu_used, wall_used = start["steps"], start["cpu_hours"] * 3600, start["wall_hours"] * 3600
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        step, cpu_used, wall_used = state["step"], state["cpu_seconds"], state["wall_seconds"]
        torch.set_rng_state(state["torch_rng"])
        sampler_seed = state["sampler_seed"]
        start = state.get("init_from")
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = build_cache(_data_root() / cfg["data"], Path(cfg.get("cache", "runs/video_cache")), cfg["max_frames_per_clip"])
    sampler = ClipSampler(clips, cfg["crop"], tuple(cfg["clip_frames"]), sampler_seed)
    lams = torch.tensor(cfg["lambdas"])
    log = out_dir / "log.jsonl"
    t_cpu, t_wall = time.process_time(), time.time()
    recent: list[dict[str, float]] = []
    try:
        from tqdm import tqdm
        bar = tqdm(total=cfg["steps"], initial=step, desc=f"train {cfg['name']}", disable=not progress)
    except ImportError:
        bar = None

    def save() -> None:
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(), "step": step,
                 "cpu_seconds": cpu_used + time.process_time() - t_cpu, "wall_seconds": wall_used + time.time() - t_wall,
                 "torch_rng": torch.get_rng_state(), "sampler_seed": sampler.rng.randrange(1 << 30), "config": cfg,
                 "init_from": start}
        with atomic_output(ckpt) as tmp:
            torch.save(state, tmp)

    model.train()
    while step < cfg["steps"]:
        if cfg["max_minutes"] and (time.time() - t_wall) / 60 > cfg["max_minutes"]:
            break
        motion_only = step < cfg["motion_steps"]
        length = 2 if motion_only else sampler.rng.randint(*cfg["clip_frames"])
        clip = sampler.batch(cfg["batch"], length)
        rate = torch.randint(0, model.num_rates, (cfg["batch"],))
        loss, stats = clip_loss(model, image_model, clip, rate, lams[rate], motion_only)
        opt.zero_grad()
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main, 1.0)
            opt.step()
        aux_opt.zero_grad()
        model.aux_loss().backward()
        aux_opt.step()
        step += 1
        recent.append({"loss": float(loss), **stats})
        if bar is not None:
            bar.update(1)
        if step % cfg["log_every"] == 0:
            row = {"step": step, "stage": "motion" if motion_only else "rd",
                   **{k: round(float(np.mean([r[k] for r in recent])), 6) for k in recent[0]}}
            with open(log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            recent = []
        if step % cfg["checkpoint_every"] == 0:
            save()
    save()
    if bar is not None:
        bar.close()
    cpu = cpu_used + time.process_time() - t_cpu
    wall = wall_used + time.time() - t_wall
    budget = {"steps": step, "motion_steps": cfg["motion_steps"], "batch": cfg["batch"], "crop": cfg["crop"],
              "clip_frames": cfg["clip_frames"], "lr": cfg["lr"], "lambdas": cfg["lambdas"], "seed": cfg["seed"],
              "data": cfg["data"], "max_frames_per_clip": cfg["max_frames_per_clip"],
              "cpu_hours": round(cpu / 3600, 3), "wall_hours": round(wall / 3600, 3), "threads": cfg["threads"],
              "device": "cpu", "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "iframe_model": cfg["iframe_model"], "iframe_weights": image.weights_hash}
    if start is not None:
        budget["init_from"] = start
    result: dict[str, Any] = {"name": cfg["name"], "budget": budget, "manifest": None}
    if cfg["ship_to"]:
        from mmcodec.video.registry import install_video_model
        result["manifest"] = str(install_video_model(Path(cfg["ship_to"]), cfg, model, budget))
    if cfg["ledger"]:
        rows = [json.loads(l) for l in log.read_text().splitlines()] if log.is_file() else []
        entry = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": cfg["name"],
                 "steps": step, "cpu_hours": budget["cpu_hours"], "budget": budget,
                 "last_log": rows[-1] if rows else None, "shipped": bool(cfg["ship_to"])}
        ledger = Path(cfg["ledger"])
        ledger.parent.mkdir(parents=True, exist_ok=True)
        previous = ledger.read_bytes() if ledger.is_file() else b""
        atomic_write(ledger, previous + (json.dumps(entry) + "\n").encode())
    return result
