"""Distortion measures D per modality, in lambda's units, for training and encoder refinement.

- "mse": 255^2 * MSE on the [0, 1] tensors (the CompressAI convention).
- "thesis" (depth only, the RGB-D thesis): THESIS_SCALE * (gamma * L1 + gradient L1 +
  (1 - MS-SSIM)), gamma = 0.1, on the normalised depth (B, 1, H, W) in [0, 1]. Holes (see
  `depth_valid_mask`) are left out of the L1 and gradient terms; MS-SSIM sees whole images.
  THESIS_SCALE makes one lambda ladder mean about the same RD slope as with MSE (below).
"""
from __future__ import annotations

import torch

from mmcodec.data.images import HOLE_FLOOR
from mmcodec.quality import MSSSIM_WEIGHTS, MSSSIM_WIN
from mmcodec.quality import ms_ssim as quality_ms_ssim

DISTORTIONS = ("mse", "thesis")     # the config key `distortion` takes one per modality

THESIS_GAMMA = 0.1                  # weight of the plain L1 term (thesis)
# lambda * THESIS_SCALE * D_thesis should trade rate like lambda * 255^2 * MSE does: the loss
# optimum sits where dR/dD = -lambda * scale, so the scale that keeps a lambda's operating
# point is 255^2 * dMSE/dD_thesis along the RD curve. scripts/depth_loss_scale.py measured it
# with the shipped (MSE-trained) rgb-d/hyperprior on 37 centre 128-px rgbdd-train depth crops:
# 720, 637, 557 between its four rate points (mean 638; the plain magnitude ratio
# 255^2*MSE / D_thesis is 800-910). Hence 640. It matches slopes of an MSE-trained model;
# training on the thesis loss moves the RD curve, so the ladder deserves a check (retune).
THESIS_SCALE = 640.0
MSE_SCALE = 255 ** 2

# Floor of MS-SSIM's per-scale terms in the loss: d(term^w)/dterm = w/term * term^w stays <= ~w * 1e4.
MSSSIM_FLOOR = 1e-4


# -- MS-SSIM --------------------------------------------------------------------------------
def msssim_scales(height: int, width: int, win_size: int = MSSSIM_WIN, max_scales: int = 5) -> int:
    """How many scales fit: the coarsest one must still be larger than the window after
    halving, i.e. short side > (win - 1) * 2^(scales - 1) (161 px for the full 5 scales;
    a 128-px training crop gets 4, a 64-px crop 3)."""
    short = min(height, width)
    scales = max_scales
    while scales > 1 and short <= (win_size - 1) * 2 ** (scales - 1):
        scales -= 1
    return scales


def ms_ssim(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0, win_size: int = MSSSIM_WIN,
            scales: int | None = None) -> torch.Tensor:
    """Differentiable MS-SSIM per sample, (B,), for training crops: mmcodec.quality.ms_ssim
    (pytorch-msssim) with the scales fitted to the crop.

    Unlike the benchmark (5 scales, smaller window), small crops keep the 11-tap window and
    lose scales (msssim_scales); the first `scales` standard weights are renormalised to sum
    to 1 so identical images still give 1. Per-scale terms are floored at MSSSIM_FLOOR, which
    bounds the gradients; negative terms (anticorrelated scales) get no gradient. Images
    smaller than the window use a window that fits (odd, at least 3 taps if possible).
    """
    if scales is None:
        scales = msssim_scales(x.shape[-2], x.shape[-1], win_size)
    short = min(x.shape[-2:])
    win_size = max(1, min(win_size, short - (1 - short % 2)))
    weights = MSSSIM_WEIGHTS[:scales]
    total = sum(weights)
    return quality_ms_ssim(x_hat, x, data_range, win_size, [w / total for w in weights], floor=MSSSIM_FLOOR)


# -- thesis depth loss ----------------------------------------------------------------------
def depth_valid_mask(target: torch.Tensor) -> torch.Tensor:
    """Valid (non-hole) pixels of normalised depth, (B, 1, H, W) bool, from the target alone.

    mmcodec.data.images maps a depth image with holes to 0 (holes) and [HOLE_FLOOR, 1] (valid).
    A sample whose nonzero values all sit at or above HOLE_FLOOR / 2 has that gap: its zeros
    are holes. A hole-free image is normalised to its own range, so its minimum is also 0
    but with depth values just above it (no gap): then every pixel is valid. (A lone minimum
    pixel far below the rest of a crop also passes as a hole: harmless.) The batch carries
    no hole flag, hence the inference.
    """
    nonzero = target > 0
    in_gap = (nonzero & (target < HOLE_FLOOR / 2)).flatten(1).any(1)
    return nonzero | in_gap.view(-1, *([1] * (target.dim() - 1)))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


def masked_l1(x_hat: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |x_hat - x| over valid pixels."""
    return _masked_mean((x_hat - x).abs(), valid)


def masked_gradient_l1(x_hat: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-sample mean(|dx x_hat - dx x|) + mean(|dy x_hat - dy x|), forward differences,
    each over the differences whose two pixels are both valid (a step into a hole is no edge)."""
    def dx(t: torch.Tensor) -> torch.Tensor:
        return t[..., :, 1:] - t[..., :, :-1]

    def dy(t: torch.Tensor) -> torch.Tensor:
        return t[..., 1:, :] - t[..., :-1, :]
    return (_masked_mean((dx(x_hat) - dx(x)).abs(), valid[..., :, 1:] & valid[..., :, :-1])
            + _masked_mean((dy(x_hat) - dy(x)).abs(), valid[..., 1:, :] & valid[..., :-1, :]))


def thesis_distortion(x_hat: torch.Tensor, x: torch.Tensor, gamma: float = THESIS_GAMMA,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """Thesis depth distortion per sample, (B,): gamma * L1 + gradient L1 + (1 - MS-SSIM).

    `valid`: pixels that count in the L1 terms (default `depth_valid_mask(x)`). MS-SSIM is on
    the whole images, holes included: it keeps some pressure on the decoder to reproduce
    holes as holes, which the L1 terms no longer give.
    """
    if valid is None:
        valid = depth_valid_mask(x)
    return (gamma * masked_l1(x_hat, x, valid) + masked_gradient_l1(x_hat, x, valid)
            + (1 - ms_ssim(x_hat, x, data_range=1.0)))


def distortion(kind: str, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample D in lambda's units: 255^2 * MSE, or THESIS_SCALE * thesis distortion."""
    if kind == "mse":
        return MSE_SCALE * (x_hat - x).pow(2).flatten(1).mean(1)
    if kind == "thesis":
        return THESIS_SCALE * thesis_distortion(x_hat, x)
    raise ValueError(f"unknown distortion {kind!r}; expected one of {DISTORTIONS}")
