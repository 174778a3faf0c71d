"""Image quality measures shared by training and the benchmark: PSNR and MS-SSIM.

MS-SSIM is pytorch-msssim's (Wang, Simoncelli, Bovik 2003: Gaussian window, sigma 1.5,
'valid' filtering, 2x2 average pooling between scales with odd sides zero-padded,
contrast-structure at the finer scales and SSIM at the coarsest). Its per-scale SSIM and
contrast maps come from `pytorch_msssim.ssim._ssim` (1.0.0, pinned); only the combination
of the scales is written here, because callers need what its public `ms_ssim` lacks: fewer
than 5 scales for small training crops, a positive floor in place of the relu (bounded
gradients), and per-band computation of the large maps (bounded memory).

torch is imported when MS-SSIM is first used: PSNR callers stay numpy-only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Identical images have infinite PSNR; report this many dB instead, so JSON stays valid.
PSNR_CAP = 150.0
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # pytorch-msssim's 5-scale defaults
MSSSIM_WIN = 11
MSSSIM_SIGMA = 1.5


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    """10 log10(peak^2 / MSE) in dB, at most PSNR_CAP (also for MSE = 0)."""
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int = MSSSIM_WIN,
            weights: Sequence[float] = MSSSIM_WEIGHTS, floor: float | None = None,
            band_values: int | None = None) -> torch.Tensor:
    """MS-SSIM per sample, (B,), of (B, C, H, W) tensors: per-channel values averaged over
    channels; differentiable. One scale per entry of `weights`; the caller makes sure the
    coarsest scale is still at least `win_size` (odd) on its short side.

    floor: None clamps the per-scale terms at 0 (pytorch-msssim's relu, whose gradient
    w * term^(w-1) explodes as a term nears 0); a positive value clamps them there instead,
    which bounds it. band_values: compute each scale's maps on bands of rows holding about
    this many values (same maps as a 'valid' filter sees the same rows; only rounding
    differs, ~1e-7), for images whose maps would not fit in memory at once.
    """
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    win = _fspecial_gauss_1d(win_size, MSSSIM_SIGMA).repeat([x.shape[1], 1, 1, 1])
    levels = []
    for scale in range(len(weights)):
        ssim_per_channel, cs = _scale_terms(x, y, data_range, win, band_values)
        if scale < len(weights) - 1:
            levels.append(cs)
            padding = [side % 2 for side in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    stacked = torch.stack(levels + [ssim_per_channel])  # (scale, batch, channel)
    stacked = torch.relu(stacked) if floor is None else stacked.clamp(min=floor)
    w = stacked.new_tensor(list(weights)).view(-1, 1, 1)
    return torch.prod(stacked ** w, dim=0).mean(1)


def _scale_terms(x: torch.Tensor, y: torch.Tensor, data_range: float, win: torch.Tensor,
                 band_values: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorch-msssim's (SSIM, contrast-structure) means per sample and channel at one scale."""
    import torch
    from pytorch_msssim.ssim import _ssim

    if band_values is None:
        return _ssim(x, y, data_range=data_range, win=win, size_average=False)
    win_size = win.shape[-1]
    out_rows = x.shape[2] - win_size + 1
    band = max(1, band_values // (x.shape[1] * x.shape[3]))
    ssim_sum = torch.zeros(x.shape[:2], dtype=torch.float64)
    cs_sum = torch.zeros(x.shape[:2], dtype=torch.float64)
    for r in range(0, out_rows, band):
        n = min(band, out_rows - r)
        rows = slice(r, r + n + win_size - 1)  # the input rows that n output rows see
        s, c = _ssim(x[:, :, rows], y[:, :, rows], data_range=data_range, win=win, size_average=False)
        ssim_sum += s.double() * n
        cs_sum += c.double() * n
    return (ssim_sum / out_rows).float(), (cs_sum / out_rows).float()
