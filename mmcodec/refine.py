"""Encoder effort: refine the latents of one pair at encode time (the decoder is untouched).

An amortised encoder (g_a, h_a) trained for a few CPU-hours leaves rate-distortion on the
table, most of all on images unlike its training data. Refinement treats the quantities the
stream carries (per modality the gained latent y and the hyper-latent z) as free variables
and minimises the model's own training objective for the chosen rate point,

    sum over modalities of  bits_m / pixels_m + lambda * D_m(x_tilde_m, x_m),

with a differentiable stand-in for rounding (`quantiser`), then codes them exactly as an
unrefined encoder would (Yang et al., "Improving Inference for Neural Image Compression",
NeurIPS 2020; Campos et al. 2019). D is measured on the image, not on the padding. The
caller (mmcodec.codec.Codec.encode) keeps the refined latents only where their *real* cost
(stream bytes + lambda * D of the real reconstruction) is lower, so more effort never gives a
worse file.

A model supports refinement with three methods: `encoder_latents(x, rate)` (nested dict of
latent tensors), `relaxed_forward(x, latents, rate, quantise)` -> {"x_hat", "bits"} per
modality, and `compress(x, rate, latents=...)`; every latent codec it holds needs `relaxed`
(the mean-scale hyperprior has it; the spatial- and channel-context codecs do not yet).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from tqdm import tqdm

from mmcodec.distortion import distortion

@dataclass(frozen=True)
class Schedule:
    """One effort level: Adam iterations, its step size, and the fraction of that step size
    reached at the last iteration (cosine decay; 1.0 = constant)."""
    iterations: int
    lr: float
    lr_final_fraction: float = 1.0

    def step_size(self, fraction: float) -> float:
        low = self.lr * self.lr_final_fraction
        return low + (self.lr - low) * 0.5 * (1 + math.cos(math.pi * fraction))


# The effort levels. The default level (DEFAULT_EFFORT) is the highest at which a 640x480 ir-vi
# pair still encodes in about 2 s on the 2-core machine; any refinement costs a second real
# encode (for the keep-if-better check) plus a few tenths of a second per iteration, so the
# default is 0. Levels 2 and 3 are sized to the 10 s and 60 s budgets. Step sizes were
# chosen on training pairs for each length: a long run gains from a large early step that
# decays as rounding hardens, a short one from a smaller step that stays up to the end
# (BENCHMARKS.md, "Encoder effort", with the timings and the sweep).
EFFORT_LEVELS = {0: Schedule(0, 0.0), 1: Schedule(8, 0.03), 2: Schedule(25, 0.05, 0.2), 3: Schedule(140, 0.08, 0.05)}
EFFORT_ITERATIONS = {e: s.iterations for e, s in EFFORT_LEVELS.items()}
DEFAULT_EFFORT = 0
SGA_TAU_START, SGA_TAU_END = 0.5, 0.05


def check_effort(effort: int) -> int:
    from mmcodec.errors import BadInputError
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in EFFORT_ITERATIONS:
        raise BadInputError(f"effort must be one of {', '.join(map(str, EFFORT_ITERATIONS))}, got {effort!r}")
    return effort


def supports_refinement(model: torch.nn.Module) -> bool:
    latent_codecs = [m for m in model.modules() if hasattr(m, "gaussian_conditional")]
    return (all(hasattr(model, name) for name in ("encoder_latents", "relaxed_forward"))
            and all(hasattr(m, "relaxed") for m in latent_codecs))


class Quantiser:
    """Annealed stochastic Gumbel rounding (SGA, Yang et al. 2020): each value becomes a soft
    mix of its floor and ceiling, drawn by a Gumbel-softmax whose logits sharpen as the
    temperature falls, so the optimisation sees rounding emerge instead of a fixed surrogate.
    Seeded: the same input, model and effort give the same latents."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.tau = SGA_TAU_START

    def set_progress(self, fraction: float) -> None:
        """Exponential annealing from SGA_TAU_START to SGA_TAU_END over the iterations."""
        self.tau = SGA_TAU_START * (SGA_TAU_END / SGA_TAU_START) ** min(max(fraction, 0.0), 1.0)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        floor = torch.floor(v)
        up = v - floor                                   # distance to the floor, in [0, 1)
        eps = 1e-5
        logits = torch.stack([-torch.atanh(up.clamp(0, 1 - eps)), -torch.atanh((1 - up).clamp(0, 1 - eps))]) / self.tau
        u = torch.rand(logits.shape, generator=self.generator).to(v.device).clamp_(1e-10, 1 - 1e-10)
        weights = torch.softmax(logits - torch.log(-torch.log(u)), dim=0)
        return floor + weights[1]


@dataclass
class RefinementReport:
    iterations: int
    seconds: float
    relaxed_cost_start: float
    relaxed_cost_end: float
    diverged: bool = False      # the relaxed cost became non-finite; the optimisation stopped there


def _map(latents: dict, fn: Callable) -> dict:
    return {k: _map(v, fn) if isinstance(v, dict) else fn(v) for k, v in latents.items()}


def _leaves(latents: dict) -> list[torch.Tensor]:
    return [t for v in latents.values() for t in (_leaves(v) if isinstance(v, dict) else [v])]


def rd_cost(bits: dict[str, torch.Tensor | float], x_hat: dict[str, torch.Tensor], x: dict[str, torch.Tensor],
            valid_hw: dict[str, tuple[int, int]], lam: float, distortions: dict[str, str]) -> dict[str, torch.Tensor]:
    """Per-modality bits / pixels + lambda * D over the image area (the training objective)."""
    cost = {}
    for m, b in bits.items():
        h, w = valid_hw[m]
        d = distortion(distortions.get(m, "mse"), x_hat[m][..., :h, :w], x[m][..., :h, :w]).sum()
        cost[m] = b / (h * w) + lam * d
    return cost


def refine(model: torch.nn.Module, x: dict[str, torch.Tensor], rate: int, lam: float,
           distortions: dict[str, str], valid_hw: dict[str, tuple[int, int]], schedule: Schedule,
           seed: int = 0, progress: bool = False, tiling=None, threads: int | None = None
           ) -> tuple[dict, RefinementReport]:
    """Refined latents (detached) for `model.compress(x, rate, latents=...)`. With `tiling`
    (big images, separate models) the latents are refined window by window (`refine_tiled`).

    `threads`: torch threads for the optimisation (default: the caller's setting). Only the
    refined latents leave this function and the stream codes them exactly, so refinement need
    not repeat the single-threaded arithmetic of coding: more threads make it faster, and a
    given input, model, effort and thread count still give the same latents."""
    with _threads(threads):
        if tiling is not None:
            return refine_tiled(model, x, rate, lam, distortions, valid_hw, schedule, tiling, seed, progress)
        start = time.time()
        with torch.no_grad():
            init = model.encoder_latents(x, rate)
        with _frozen(model):
            latents, costs = _optimise(lambda lat, quantise: model.relaxed_forward(x, lat, rate, quantise), init,
                                       x, valid_hw, lam, distortions, schedule, seed, progress)
        return latents, RefinementReport(schedule.iterations, time.time() - start, *costs)


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """No weight gradients during refinement (only the latents move): less work per step."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _optimise(relaxed: Callable[[dict, Quantiser], dict], init: dict, x: dict[str, torch.Tensor],
              valid_hw: dict[str, tuple[int, int]], lam: float, distortions: dict[str, str], schedule: Schedule,
              seed: int, progress: bool) -> tuple[dict, tuple[float, float, bool]]:
    """Adam on a copy of `init` against the relaxed objective `relaxed(latents, quantiser)`.
    Returns bounded refined latents, the relaxed cost at the first and last iteration, and
    whether the cost became non-finite (the loop stops before such a step can poison Adam)."""
    latents = _map(init, lambda t: t.detach().clone().requires_grad_(True))
    params = _leaves(latents)
    opt = torch.optim.Adam(params, lr=schedule.lr)
    iterations = schedule.iterations
    quantise = Quantiser(seed)
    first = last = math.nan
    diverged = False
    bar = tqdm(total=iterations, desc="refining latents", leave=False, disable=not progress, delay=1.0)
    try:
        with torch.enable_grad():
            for it in range(iterations):
                progress_fraction = it / max(iterations - 1, 1)
                quantise.set_progress(progress_fraction)
                for group in opt.param_groups:
                    group["lr"] = schedule.step_size(progress_fraction)
                out = relaxed(latents, quantise)
                loss = sum(rd_cost(out["bits"], out["x_hat"], x, valid_hw, lam, distortions).values())
                if not torch.isfinite(loss):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if not all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None):
                    diverged = True
                    break
                opt.step()
                last = float(loss.detach())
                first = last if it == 0 else first
                bar.update(1)
    finally:
        bar.close()
    return _map(_pairs(init, latents), _bounded), (first, last, diverged)


def refine_tiled(model: torch.nn.Module, x: dict[str, torch.Tensor], rate: int, lam: float,
                 distortions: dict[str, str], valid_hw: dict[str, tuple[int, int]], schedule: Schedule, tiling,
                 seed: int = 0, progress: bool = False) -> tuple[dict, RefinementReport]:
    """Refinement of a tiled (big-image) encode with bounded memory: per modality, each latent
    tile of the stream's tiling is refined on its own, with the stream's halo of context, and
    only its core is written back. Windows are widened to multiples of 4 latents so that the
    hyper-latent z (4x coarser) is cut at the same places. Separate models only (their
    modalities are independent; the others do not tile)."""
    from mmcodec.tiling import _windows
    start = time.time()
    with torch.no_grad():
        latents = model.encoder_latents(x, rate, tiling=tiling)
    costs: list[tuple[float, float, bool]] = []
    with _frozen(model):
        for m, codec in model.codecs.items():
            y, z = latents[m]["y"].clone(), latents[m]["z"].clone()
            for core, window in _windows(tuple(y.shape[-2:]), tiling.tile, tiling.halo):
                window = (window[0] // 4 * 4, -(-window[1] // 4) * 4, window[2] // 4 * 4, -(-window[3] // 4) * 4)
                cost = _refine_window(codec, m, x[m], y, z, core, window, valid_hw[m], rate, lam, distortions,
                                      schedule, seed, progress)
                if cost is not None:
                    costs.append(cost)
            latents[m] = {"y": y, "z": z}
    return latents, RefinementReport(schedule.iterations, time.time() - start, sum(c[0] for c in costs),
                                     sum(c[1] for c in costs), any(c[2] for c in costs))


def _refine_window(codec: torch.nn.Module, m: str, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                   core: tuple[int, int, int, int], window: tuple[int, int, int, int], image_hw: tuple[int, int],
                   rate: int, lam: float, distortions: dict[str, str], schedule: Schedule, seed: int,
                   progress: bool) -> tuple[float, float, bool] | None:
    """Refine one latent window of one modality in place (y and z cores); None for padding."""
    from mmcodec.tiling import LATENT_STRIDE as s
    (r0, r1, c0, c1), (w0, w1, v0, v1) = core, window
    # The distortion counts the image pixels of the window's core only.
    valid = (max(0, min(image_hw[0] - r0 * s, (r1 - r0) * s)), max(0, min(image_hw[1] - c0 * s, (c1 - c0) * s)))
    if valid[0] == 0 or valid[1] == 0:
        return None
    target = x[..., r0 * s:r1 * s, c0 * s:c1 * s]
    rows, cols = slice((r0 - w0) * s, (r1 - w0) * s), slice((c0 - v0) * s, (c1 - v0) * s)

    def relaxed(lat: dict, quantise: Quantiser) -> dict:
        out = codec.relaxed_forward(lat, rate, quantise)
        return {"x_hat": {m: out["x_hat"][..., rows, cols]}, "bits": {m: out["bits"]}}
    init = {"y": y[..., w0:w1, v0:v1], "z": z[..., w0 // 4:w1 // 4, v0 // 4:v1 // 4]}
    refined, cost = _optimise(relaxed, init, {m: target}, {m: valid}, lam, distortions, schedule, seed,
                              progress)
    y[..., r0:r1, c0:c1] = refined["y"][..., r0 - w0:r1 - w0, c0 - v0:c1 - v0]
    zr0, zr1, zc0, zc1 = r0 // 4, -(-r1 // 4), c0 // 4, -(-c1 // 4)
    z[..., zr0:zr1, zc0:zc1] = refined["z"][..., zr0 - w0 // 4:zr1 - w0 // 4, zc0 - v0 // 4:zc1 - v0 // 4]
    return cost


# Refined latents stay within this many quantisation steps of the encoder's range: a diverged
# optimisation must not hand the entropy coder huge or non-finite symbols (the rANS escape
# path codes large values slowly). The real-cost check then rejects such latents anyway.
LATENT_MARGIN = 64.0


def _pairs(a: dict, b: dict) -> dict:
    return {k: _pairs(a[k], b[k]) if isinstance(a[k], dict) else (a[k], b[k]) for k in a}


def _bounded(pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    init, refined = pair[0], pair[1].detach()
    refined = torch.where(torch.isfinite(refined), refined, init)
    return refined.clamp(float(init.min()) - LATENT_MARGIN, float(init.max()) + LATENT_MARGIN)

