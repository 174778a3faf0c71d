"""Rate-distortion loss: R + lambda * 255^2 * MSE per modality, per-sample lambda (variable rate)."""
from __future__ import annotations

import math

import torch


def bits_per_pixel(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Per-sample bpp from a dict of likelihood tensors (B, ...)."""
    total = sum(torch.log(lik).flatten(1).sum(1) for lik in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


def rd_loss(out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor,
            modality_weight: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """`lam` holds one lambda per sample. Returns the loss and per-modality bpp/MSE means."""
    modality_weight = modality_weight or {}
    terms: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=lam.device)
    for m, target in x.items():
        num_pixels = target.shape[-2] * target.shape[-1]
        mse = (out["x_hat"][m] - target).pow(2).flatten(1).mean(1)
        bpp = bits_per_pixel(out["likelihoods"][m], num_pixels) if m in out["likelihoods"] else torch.zeros_like(mse)
        loss = loss + (bpp + modality_weight.get(m, 1.0) * lam * 255 ** 2 * mse).mean()
        terms[f"bpp_{m}"] = bpp.mean().detach()
        terms[f"mse_{m}"] = mse.mean().detach()
    terms["loss"] = loss
    return terms


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))
