"""Rate-distortion loss: R + lambda * D per modality, per-sample lambda (variable rate).

D is chosen per modality (config key `distortion`, default "mse" everywhere): the measures
are mmcodec.distortion's ("mse", or the RGB-D thesis's depth loss "thesis").
"""
from __future__ import annotations

import math

import torch

from mmcodec.distortion import MSE_SCALE, distortion

def bits_per_pixel(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Per-sample bpp from a dict of likelihood tensors (B, ...)."""
    total = sum(torch.log(lik).flatten(1).sum(1) for lik in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


# -- RD losses ------------------------------------------------------------------------------
def modality_rd(out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor, modality: str,
                modality_weight: dict[str, float] | None = None,
                distortions: dict[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One modality's per-sample (loss, bpp, mse): loss = bpp + weight * lambda * D, D as
    `distortions[modality]` says (default 255^2 * MSE). MSE is returned for the PSNR log."""
    target = x[modality]
    x_hat = out["x_hat"][modality]
    num_pixels = target.shape[-2] * target.shape[-1]
    mse = (x_hat - target).pow(2).flatten(1).mean(1)
    kind = (distortions or {}).get(modality, "mse")
    dist = MSE_SCALE * mse if kind == "mse" else distortion(kind, x_hat, target)
    likelihoods = out["likelihoods"].get(modality)
    bpp = bits_per_pixel(likelihoods, num_pixels) if likelihoods else torch.zeros_like(mse)
    weight = (modality_weight or {}).get(modality, 1.0)
    return bpp + weight * lam * dist, bpp, mse


def rd_loss(out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor,
            modality_weight: dict[str, float] | None = None,
            distortions: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """`lam` holds one lambda per sample. Returns the loss and per-modality bpp/MSE means."""
    terms: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=lam.device)
    for m in x:
        sample_loss, bpp, mse = modality_rd(out, x, lam, m, modality_weight, distortions)
        loss = loss + sample_loss.mean()
        terms[f"bpp_{m}"] = bpp.mean().detach()
        terms[f"mse_{m}"] = mse.mean().detach()
    terms["loss"] = loss
    return terms


def joint_objective_loss(out: dict, frozen_out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor,
                         reference: str, current: str, weight: float,
                         modality_weight: dict[str, float] | None = None,
                         distortions: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Lu et al.'s joint objective L_ref + weight * |L_cur - L_cur*| (batch means; the paper
    writes L_v + w|L_i - L_i*| for its visible reference and infrared current modality).

    L_ref: the reference modality's RD loss; L_cur: the current modality's, from `out`; L_cur*:
    the current modality's from `frozen_out`, the frozen pretrained model's forward on the
    same batch. Returns the terms of `rd_loss` (bpp/MSE of the trained model) with this
    loss, plus its components for the log.
    """
    terms = rd_loss(out, x, lam, modality_weight, distortions)    # bpp/MSE for the log; "loss" is replaced
    loss_reference = modality_rd(out, x, lam, reference, modality_weight, distortions)[0].mean()
    loss_current = modality_rd(out, x, lam, current, modality_weight, distortions)[0].mean()
    loss_current_frozen = modality_rd(frozen_out, x, lam, current, modality_weight, distortions)[0].mean().detach()
    gap = (loss_current - loss_current_frozen).abs()
    terms.update(loss=loss_reference + weight * gap, loss_reference=loss_reference.detach(),
                 loss_current=loss_current.detach(), loss_current_frozen=loss_current_frozen,
                 current_gap=gap.detach())
    return terms
