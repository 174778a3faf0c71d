"""`mmcodec train`: variable-rate RD training of any registered pair model.

One loop serves every architecture: the model's forward gives reconstructions and
likelihoods per modality, the loss sums R + lambda*D over modalities with a lambda drawn
per sample from the model's rate ladder (D per modality from `distortion`: 255^2*MSE by
default, or the thesis depth loss). Checkpoints (fp32 weights + optimiser state) let a
run resume exactly; at the end the model is exported as an installed model (fp16).
With `joint_objective` (Lu et al.), the loss is L_ref + w|L_cur - L_cur*| instead, L_cur* from a
frozen copy of the model as loaded (see mmcodec.train.config).
"""
from __future__ import annotations

import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from mmcodec.data.crops import PairCrops
from mmcodec.data.pairs import split_records
from mmcodec.errors import BadInputError, TrainingDivergedError
from mmcodec.files import atomic_output
from mmcodec.models.registry import build_model, find_model, install_model, load_weights
from mmcodec.quality import psnr_from_mse
from mmcodec.train.campaign import after_training
from mmcodec.train.config import TrainConfig
from mmcodec.train.distributed import setup as setup_distributed
from mmcodec.train.lineage import continued_lineage
from mmcodec.train.loss import joint_objective_loss, rd_loss
from mmcodec.train.precision import bf16_forward, resolve_autocast
from mmcodec.train.schedule import check_crops, check_geometry, crop_and_batch_at, lr_at
from mmcodec.train.warm_start import frozen_pretrained_copy, replayed_random_state, shipped_manifest, warm_start

JOINT_LOG_COLUMNS = ("loss_reference", "loss_current", "loss_current_frozen", "current_gap")


def _build(cfg: TrainConfig) -> torch.nn.Module:
    """The model of `cfg`. Its kwargs come from the user: a TypeError or ValueError while
    building from them (unknown or missing argument, a string for a size) is the config's."""
    try:
        return build_model(cfg.arch, cfg.kwargs)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"kwargs {cfg.kwargs} do not build a {cfg.arch} model: {exc}") from None


def optimisation_step(model: torch.nn.Module, loss: torch.Tensor, params: list[torch.nn.Parameter],
                      aux_params: list[torch.nn.Parameter], opt: torch.optim.Optimizer,
                      aux_opt: torch.optim.Optimizer, clip: float,
                      average_aux_gradients: Callable[[list[torch.nn.Parameter]], None] = lambda _: None) -> bool:
    """One update after the forward pass: RD loss backward, gradient clipping, Adam; then the
    entropy bottlenecks' quantile (aux) loss with its own optimiser. Data-parallel runs
    average the aux gradients by hand (they are outside the DDP-wrapped forward).

    A non-finite gradient norm (a NaN/inf loss) skips the whole update and returns False:
    one bad batch must not turn every weight into NaN. The norm is taken after DDP's
    all-reduce, so all replicas skip together."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    if not torch.isfinite(norm):
        opt.zero_grad(set_to_none=True)
        return False
    opt.step()
    aux = model.aux_loss()
    if aux.requires_grad:   # all entropy bottlenecks frozen (e.g. rgbd_tcm fusion stages): nothing to fit
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        average_aux_gradients(aux_params)
        aux_opt.step()
    return True


# Consecutive skipped (non-finite) steps after which a run is declared diverged.
MAX_NONFINITE_STEPS = 25


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    cfg.validate()
    ddp = setup_distributed(cfg.device)  # torchrun: one replica per process; alone: a no-op
    progress = progress and ddp.is_main
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = ddp.device
    # The model first: kwargs it refuses (e.g. Lu2022 ratio 2 with an infrared reference) and
    # crops or a `downsample` that do not suit it fail before the run folder or any data exist.
    model = _build(cfg).to(device)
    if model.num_rates != len(cfg.lambdas):
        raise BadInputError(f"model has {model.num_rates} rates but {len(cfg.lambdas)} lambdas are configured")
    check_crops(cfg, model)
    check_geometry(cfg, model)
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    ckpt_path = out / "checkpoint.pt"
    for split in (cfg.eval_split, cfg.select_split, cfg.validate_split):
        if split:
            split_records(split)  # a missing split fails now, not after the whole run
    step, cpu_seconds, wall_seconds, segment_start = 0, 0.0, 0.0, 0
    state = None
    # The budget this run continues and its step then: the per-codec lineage of a composed model.
    lineage_start: dict[str, Any] | None = None
    lineage_start_step = 0
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        step, cpu_seconds, wall_seconds = state["step"], state["cpu_seconds"], state["wall_seconds"]
        segment_start = state.get("segment_start", 0)
        lineage_start, lineage_start_step = state.get("lineage_start"), state.get("lineage_start_step", 0)
        if cfg.steps > state["config"]["steps"]:
            segment_start = step   # continued training: a new LR segment
    elif resume and (shipped := shipped_manifest(cfg)) is not None:
        # A fresh clone has no runs/ directory: continue the campaign from the committed
        # (fp16) shipped weights and their recorded cumulative budget. Adam's moments are not
        # committed (they would triple the file), so the optimiser restarts with a warm-up.
        weights, budget = shipped
        load_weights(model, weights)
        step = int(budget["steps"])
        cpu_seconds = 3600.0 * float(budget.get("cpu_hours", 0.0))
        wall_seconds = 3600.0 * float(budget.get("wall_hours", 0.0))
        segment_start = step
        lineage_start, lineage_start_step = budget, step
        if cfg.steps <= step:
            raise BadInputError(f"--resume: the shipped {cfg.name} already has {step} steps; ask for more (steps=N)")
        print(f"resume: no checkpoint in {out}; continuing from the shipped weights {weights} at step {step}")
    elif resume:
        raise BadInputError(f"--resume: no checkpoint in {out}"
                            + ("" if cfg.ship_to else " (and no ship_to directory with shipped weights)"))
    elif cfg.init_from:
        n = warm_start(model, cfg.init_from, cfg.init_map)
        print(f"warm start: {n} tensors from {cfg.init_from}")
        source = None if cfg.init_from.endswith((".safetensors", ".pt")) else find_model(cfg.init_from)
        if source is not None and source.arch == cfg.arch and not cfg.init_map and source.budget:
            # The same model continued in a new run: its codecs keep their history (a frozen
            # codec its steps and budget, a trained one its steps plus this run's).
            lineage_start, lineage_start_step = dict(source.budget), 0
            lineage_start.setdefault("codec_steps", {m: int(source.budget.get("steps", 0)) for m in cfg.modalities})

    frozen = tuple(cfg.freeze)
    for n, p in model.named_parameters():
        if frozen and n.startswith(frozen):
            p.requires_grad_(False)
    stage_params = {id(p) for p in model.stage_parameters(cfg.stage)}
    params = [p for n, p in model.named_parameters()
              if p.requires_grad and not n.endswith(".quantiles") and id(p) in stage_params]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    joint_weight = cfg.joint_objective_weight
    frozen_model = None
    if joint_weight is not None:
        frozen_model = frozen_pretrained_copy(model, cfg, params,
                                              state.get("joint_frozen_model") if state is not None else None)
    # The same draws as torch.randint(num_rates) when every rate is trained.
    rate_choices = torch.tensor(cfg.train_rates if cfg.train_rates is not None else range(model.num_rates))
    opt = torch.optim.Adam(params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
    if state is not None:
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])

    autocast = resolve_autocast(cfg.autocast, device)
    if cfg.compile:
        model.forward = torch.compile(model.forward)
    net = ddp.wrap(model)
    forward = bf16_forward(net, device) if autocast == "bf16" else net
    if cfg.single_images and not getattr(model, "independent_modalities", False):
        raise BadInputError(f"single_images needs a model that codes each modality on its own (separate); "
                            f"{cfg.arch} codes them jointly")
    data = PairCrops(split_records(cfg.train_split), tuple(cfg.modalities), seed=ddp.seed(cfg.seed + step),
                     progress=progress, darken=cfg.darken, single_images=cfg.single_images,
                     ratios={m: model.size_ratio(m) for m in cfg.modalities}, downsample=cfg.downsample)
    lambdas = torch.tensor(cfg.lambdas, device=device)
    log_path = out / "log.csv"
    new_log = not log_path.exists() or not resume
    if not new_log and ddp.is_main:  # drop rows logged after the checkpoint we resume from
        rows = log_path.read_text().splitlines()
        keep = [r for r in rows[1:] if int(r.split(",", 1)[0]) <= step]
        log_path.write_text("\n".join([rows[0], *keep]) + "\n")
    log_fh = open(log_path if ddp.is_main else os.devnull, "w" if new_log else "a", newline="")
    log = csv.writer(log_fh)
    if new_log:
        log.writerow(["step", "lr", "loss", *[f"bpp_{m}" for m in cfg.modalities],
                      *[f"psnr_{m}" for m in cfg.modalities], "cpu_seconds", "wall_seconds",
                      *(JOINT_LOG_COLUMNS if frozen_model is not None else ())])
    gen = torch.Generator().manual_seed(ddp.seed(cfg.seed + step))
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.name}", disable=not progress)
    cpu0, wall0 = time.process_time(), time.time()
    running: dict[str, float] = {}
    nonfinite_run, skipped_steps = 0, 0
    cpu_now = [cpu_seconds]  # CPU seconds of all processes, agreed once per step

    def refresh_cpu() -> None:
        cpu_now[0] = cpu_seconds + ddp.sum(time.process_time() - cpu0)

    def save_checkpoint() -> None:
        checkpoint = {"model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                      "step": step, "cpu_seconds": cpu_now[0],
                      "wall_seconds": wall_seconds + time.time() - wall0, "segment_start": segment_start,
                      "lineage_start": lineage_start, "lineage_start_step": lineage_start_step,
                      "config": cfg.to_json()}
        if frozen_model is not None:  # a resumed joint run must compare with the same pretrained model
            checkpoint["joint_frozen_model"] = frozen_model.state_dict()
        with atomic_output(ckpt_path) as tmp:
            torch.save(checkpoint, tmp)

    def budget_used() -> float | None:
        if not cfg.budget_cpu_minutes:
            return None
        return cpu_now[0] / (60 * cfg.budget_cpu_minutes)

    # The bar and the log close on every exit, a diverged run included.
    try:
        while step < cfg.steps and (budget_used() or 0.0) < 1.0:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg, segment_start, budget_used())
            crop, batch = crop_and_batch_at(step, cfg)
            local_batch = ddp.local_batch(batch)
            x = {m: t.to(device) for m, t in data.batch(local_batch, crop).items()}
            rate = rate_choices[torch.randint(len(rate_choices), (local_batch,), generator=gen)].to(device)
            if frozen_model is None:
                out_fw = forward(x, rate)
                terms = rd_loss(out_fw, x, lambdas[rate], cfg.modality_weight, cfg.distortion)
            else:
                cpu_rng = torch.get_rng_state()
                cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
                out_fw = net(x, rate)
                with torch.no_grad(), replayed_random_state(cpu_rng, cuda_rng, device):
                    frozen_out = frozen_model(x, rate)
                terms = joint_objective_loss(out_fw, frozen_out, x, lambdas[rate], model.reference, model.current,
                                             joint_weight, cfg.modality_weight, cfg.distortion)
            if optimisation_step(model, terms["loss"], params, aux_params, opt, aux_opt, cfg.clip, ddp.average_gradients):
                nonfinite_run = 0
            else:
                nonfinite_run, skipped_steps = nonfinite_run + 1, skipped_steps + 1
                if nonfinite_run >= MAX_NONFINITE_STEPS:
                    raise TrainingDivergedError(
                        f"training diverged at step {step + 1}: no finite loss for {nonfinite_run} steps in a row "
                        f"(lr {opt.param_groups[0]['lr']:.3g}); {ckpt_path} is the last good checkpoint - "
                        "lower lr or warmup and resume")
            step += 1
            refresh_cpu()
            for k, v in terms.items():
                running[k] = running.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if step % cfg.log_every == 0 or step == cfg.steps or (budget_used() or 0) >= 1:
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                avg = ddp.mean({k: v / n for k, v in running.items()})
                running = {}
                log.writerow([step, f"{opt.param_groups[0]['lr']:.3g}", f"{avg['loss']:.4f}",
                              *[f"{avg[f'bpp_{m}']:.4f}" for m in cfg.modalities],
                              *[f"{psnr_from_mse(avg[f'mse_{m}']):.2f}" for m in cfg.modalities],
                              f"{cpu_now[0]:.0f}", f"{wall_seconds + time.time() - wall0:.0f}",
                              *(f"{avg[k]:.4f}" for k in (JOINT_LOG_COLUMNS if frozen_model is not None else ()))])
                log_fh.flush()
                bar.set_postfix(loss=f"{avg['loss']:.3f}", **{f"bpp_{m}": f"{avg[f'bpp_{m}']:.3f}" for m in cfg.modalities})
            bar.update(1)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or (budget_used() or 0) >= 1:
                if ddp.is_main:
                    save_checkpoint()
    finally:
        bar.close()
        log_fh.close()
    refresh_cpu()
    cpu_total = cpu_now[0]
    wall_total = wall_seconds + time.time() - wall0
    budget = {"steps": step, "batch": cfg.batch, "crop": cfg.crop, "crop_schedule": cfg.crop_schedule,
              "lr": cfg.lr, "train_split": cfg.train_split,
              "pairs": len(data), "lambdas": cfg.lambdas, "cpu_hours": round(cpu_total / 3600, 3),
              "wall_hours": round(wall_total / 3600, 3), "threads": cfg.threads, "device": cfg.device,
              "init_from": cfg.init_from, "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "distortion": {m: cfg.distortion_of(m) for m in cfg.modalities}}
    if joint_weight is not None:
        budget["joint_objective"] = {"weight": joint_weight}
    if skipped_steps:
        budget["skipped_nonfinite_steps"] = skipped_steps
    if cfg.darken:
        budget["darken"] = cfg.darken
    if cfg.downsample:
        budget["downsample"] = cfg.downsample
    if cfg.single_images:
        budget["single_images"] = {m: {f: {"weight": w, "images": n} for f, w, n in data.single_sources(m)}
                                   for m in cfg.single_images}
    if getattr(model, "independent_modalities", False):
        trained = {m: any(p.requires_grad and id(p) in stage_params
                          for n, p in model.named_parameters() if n.startswith(f"codecs.{m}."))
                   for m in cfg.modalities}
        budget.update(continued_lineage(lineage_start, lineage_start_step, step, trained))
    if cfg.autocast or cfg.compile:
        budget["speed_options"] = {"autocast": autocast, "compile": cfg.compile}
        if autocast != cfg.autocast:
            budget["speed_options"]["autocast_requested"] = cfg.autocast
    if ddp.enabled:
        hashes = ddp.replica_hashes(model)
        if len(set(hashes)) != 1:
            raise RuntimeError(f"data-parallel replicas diverged: weight hashes {hashes}")
        budget["distributed"] = {"world_size": ddp.world_size, "backend": ddp.backend, "replica_weights": hashes}
        if not ddp.is_main:
            ddp.close()
            return {"manifest": None, "budget": budget, "rank": ddp.rank}
    model.eval()
    manifest = install_model(out / "model", cfg.name, cfg.arch, cfg.kwargs, list(cfg.modalities),
                             list(cfg.lambdas), model, default=cfg.default, description=cfg.description,
                             budget=budget)
    (out / "budget.json").write_text(json.dumps(budget, indent=2) + "\n")
    ddp.close()
    result: dict[str, Any] = {"manifest": str(manifest), "budget": budget}
    if cfg.eval_split or cfg.select_split or cfg.ledger:  # every run with a ledger leaves a row
        result.update(after_training(cfg, manifest, budget, progress))
    return result
