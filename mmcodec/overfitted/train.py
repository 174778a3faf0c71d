"""Encoder-side fitting of one image: soft-rounding/noise annealing, then straight-through."""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mmcodec.overfitted.coding import encode, encode_weights, quantise_weights
from mmcodec.overfitted.model import OverfitConfig, OverfittedImage

WEIGHT_STEPS = (6, 7, 8)          # candidate weight steps 2^-q, chosen per image by RD cost


@dataclass
class Encoded:
    stream: bytes
    recon: np.ndarray             # exactly what `decode` returns
    fit_s: float
    encode_s: float               # fit + weight-step choice + real coding
    iterations: int
    q: int


def _target(image: np.ndarray) -> torch.Tensor:
    a = torch.from_numpy(np.ascontiguousarray(image)).float() / 255.0
    return a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]


def fit(image: np.ndarray, lam: float, iterations: int, cfg: OverfitConfig, cond_image: np.ndarray | None = None,
        lr: float = 1e-2, seed: int = 0, soft_fraction: float = 0.8, log_scale_init: float = 0.0,
        progress: Callable[[int, float], None] | None = None) -> OverfittedImage:
    """Fit latents + networks to `image` (uint8, (H,W) or (H,W,3)) for bits/pixel + lam * 255^2 * MSE.

    Schedule (Cool-chic style): the first `soft_fraction` of the iterations use soft rounding
    (temperature 0.3 -> 0.1) plus uniform noise (amplitude 1 -> 0.3), so gradients reach every
    latent; the rest use straight-through rounding at a tenth of the lr, so the model is tuned
    for the exact quantisation the stream uses.
    """
    torch.manual_seed(seed)
    x = _target(image)
    h, w = x.shape[2:]
    cond = _target(cond_image) * 255.0 if cond_image is not None else None
    model = OverfittedImage(cfg, h, w, cond, log_scale_init=log_scale_init)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_soft = int(round(soft_fraction * iterations))
    pixels = h * w
    for i in range(iterations):
        if i < n_soft:
            frac = i / max(1, n_soft - 1)
            recon, bits = model("soft", t=0.3 * (1 / 3) ** frac, noise=1.0 - 0.7 * frac)
        else:
            if i == n_soft:
                for g in opt.param_groups:
                    g["lr"] = lr * 0.1
            recon, bits = model("ste")
        loss = bits / pixels + lam * 255.0 ** 2 * torch.mean((recon - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None:
            progress(i, float(loss))
    return model


def rd_cost(model: OverfittedImage, image: np.ndarray, lam: float, weight_bits: int) -> float:
    """Estimated bits/pixel + lam*D with rounded latents and the current (quantised) weights."""
    x = _target(image)
    with torch.no_grad():
        recon, bits = model("round")
    d = 255.0 ** 2 * float(torch.mean((recon.clamp(0, 1) - x) ** 2))
    return (float(bits) + weight_bits) / (model.h * model.w) + lam * d


def fit_and_encode(image: np.ndarray, lam: float, iterations: int, cfg: OverfitConfig,
                   cond_image: np.ndarray | None = None, lr: float = 1e-2, seed: int = 0) -> Encoded:
    """Fit, choose the weight step by estimated RD cost, then code for real."""
    t0 = time.perf_counter()
    model = fit(image, lam, iterations, cfg, cond_image, lr=lr, seed=seed)
    t1 = time.perf_counter()
    best = None
    for q in WEIGHT_STEPS:
        m = copy.deepcopy(model)
        quantise_weights(m.arm, m.synth, q)
        cost = rd_cost(m, image, lam, 8 * len(encode_weights(m.arm, m.synth, q)))
        if best is None or cost < best[0]:
            best = (cost, q)
    stream, recon = encode(model, best[1], cond_image)
    return Encoded(stream, recon, t1 - t0, time.perf_counter() - t0, iterations, best[1])
