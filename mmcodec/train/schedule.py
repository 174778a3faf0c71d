"""What a training step uses, by step: the learning rate (warm-up, cosine decay), the crop
size and batch (`crop_schedule`), and the checks that every crop suits the model and that
`downsample` leaves the pair geometry the model codes."""
from __future__ import annotations

import json
import math
import sys

import torch

from mmcodec.errors import BadInputError
from mmcodec.train.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, segment_start: int, budget_used: float | None = None) -> float:
    """Linear warm-up, then decay to lr*lr_min_factor over the current segment (cosine, or
    constant when cfg.schedule == "constant"). With a CPU budget, the decay follows the
    fraction of the budget used instead of the step count."""
    span = max(cfg.steps - segment_start, 1)
    t = step - segment_start
    warm = cfg.warmup if segment_start == 0 else min(cfg.warmup, 50)
    if t < warm:
        return cfg.lr * (t + 1) / warm
    if cfg.schedule == "constant":
        return cfg.lr
    frac = budget_used if budget_used is not None else (t - warm) / max(span - warm, 1)
    frac = min(max(frac, 0.0), 1.0)
    lo = cfg.lr * cfg.lr_min_factor
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * frac))


def crop_at(step: int, cfg: TrainConfig) -> int:
    """Crop size for this step: the last crop_schedule entry whose step has been reached."""
    return crop_and_batch_at(step, cfg)[0]


def crop_and_batch_at(step: int, cfg: TrainConfig) -> tuple[int, int]:
    """(crop, batch) for this step. A crop_schedule entry is [step, crop] or [step, crop, batch];
    an entry without a batch keeps cfg.batch. Larger crops late in training give the hyperprior a
    larger hyper-latent to learn from; a smaller batch keeps the pixels per step (the cost) equal."""
    crop, batch = cfg.crop, cfg.batch
    for start, size, *rest in cfg.crop_schedule:
        if step >= start:
            crop, batch = size, (rest[0] if rest else cfg.batch)
    return crop, batch


def check_crops(cfg: TrainConfig, model: torch.nn.Module) -> None:
    """Every crop the run will use must be a multiple of each modality's padding multiple (the
    model's total downsampling), or the window attention fails deep inside a forward pass. A
    crop size is the side on the lowest-resolution modality; a modality of `size_ratio` r gets
    crops of r times that side, checked against its own padding multiple."""
    used = {crop_at(s, cfg) for s in [0, *(entry[0] for entry in cfg.crop_schedule)] if s < max(cfg.steps, 1)}
    for m in cfg.modalities:
        multiple, r = model.padding_multiple(m), model.size_ratio(m)
        bad = sorted(c for c in used if (r * c) % multiple)
        if bad:
            scaled = f" ({r}x the crop: {r * bad[0]})" if r != 1 else ""
            raise BadInputError(f"crop {bad[0]} does not suit {cfg.arch}: {m} crops{scaled} must be multiples "
                                f"of {multiple}")
    # A crop equal to the total downsampling leaves a 1x1 hyper-latent: the hyper path then sees
    # only padding and the entropy model learns the crop's borders. Cheap early steps on such
    # crops help, but a run that ends on them codes whole images worse than it codes crops
    # (issue 6: +300 steps on 64-px crops doubled a LIC-TCM depth codec's bits on 512x384 images).
    last = crop_at(max(cfg.steps - 1, 0), cfg)
    if cfg.steps > 0 and any(model.size_ratio(m) * last <= model.padding_multiple(m) for m in cfg.modalities):
        print(f"warning: this run ends on {last}-px crops, which leave {cfg.arch} a 1x1 hyper-latent; "
              "its rates on whole images may grow (end on crops of at least twice that: "
              "scripts/context_size_probe.py measures it)", file=sys.stderr)


def downsampled_ratios(downsample: dict[str, int], modalities: list[str]) -> dict[str, float]:
    """The resolution of each modality relative to the lowest one after `downsample`
    (e.g. {"ir": 2} -> rgb 2, ir 1)."""
    factors = {m: downsample.get(m, 1) for m in modalities}
    coarsest = max(factors.values())
    return {m: coarsest / f for m, f in factors.items()}


def check_geometry(cfg: TrainConfig, model: torch.nn.Module) -> None:
    """`downsample` must leave the pair geometry the model codes (its `size_ratio`), and a run
    whose training data it re-shapes cannot be evaluated on pairs as they are on disk."""
    if not cfg.downsample:
        return
    ratios = downsampled_ratios(cfg.downsample, cfg.modalities)
    wanted = {m: model.size_ratio(m) for m in cfg.modalities}
    if ratios != wanted:
        def show(r: dict[str, float]) -> str:
            return ", ".join(f"{m} {v:g}" for m, v in r.items())
        raise BadInputError(f"downsample {json.dumps(cfg.downsample)} gives resolutions {show(ratios)} but "
                            f"{cfg.arch} (kwargs {json.dumps(cfg.kwargs)}) codes {show(wanted)} (size_ratio)")
    evaluated = [k for k in ("eval_split", "select_split", "validate_split") if getattr(cfg, k)]
    if evaluated and any(r != 1 for r in ratios.values()):
        raise BadInputError(f"downsample {json.dumps(cfg.downsample)} trains on pairs re-shaped to "
                            f"{cfg.arch}'s geometry, but {evaluated[0]} would be coded as it is on disk: "
                            f"leave {', '.join(evaluated)} unset")
