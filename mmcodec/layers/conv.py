"""Convolutional building blocks shared by every mmcodec model.

Transforms (convolutions, GDN stacks, residual blocks) and the attention blocks that the
paper modules combine: window cross-attention (Lu et al. spatial alignment), agent attention
(CCEM's LCFB), Swin/TCM blocks (LIC-TCM). Paper modules import from here; nothing here knows
about a particular paper.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.layers import GDN


def conv(in_ch: int, out_ch: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_ch: int, out_ch: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=stride,
                              output_padding=stride - 1, padding=kernel_size // 2)


def analysis_transform(in_ch: int, N: int, M: int) -> nn.Sequential:
    """Ballé-style g_a: four stride-2 convolutions with GDN, 16x downsampling."""
    return nn.Sequential(conv(in_ch, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis_transform(M: int, N: int, out_ch: int) -> nn.Sequential:
    """Mirror of `analysis_transform` with inverse GDN, 16x upsampling."""
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                         deconv(N, N), GDN(N, inverse=True), deconv(N, out_ch))


def hyper_analysis(M: int, N: int) -> nn.Sequential:
    return nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True),
                         conv(N, N))


def hyper_synthesis_mean_scale(N: int, M: int) -> nn.Sequential:
    """h_s producing 2M channels: Gaussian scales and means."""
    return nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                         nn.LeakyReLU(inplace=True), conv(M * 3 // 2, M * 2, 3, 1))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU and an identity (or 1x1) shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(in_ch, out_ch, 3, 1), nn.LeakyReLU(inplace=True),
                                  conv(out_ch, out_ch, 3, 1), nn.LeakyReLU(inplace=True))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class MaskedConv2d(nn.Conv2d):
    """Causal convolution for autoregressive context models (van den Oord et al. 2016).

    The kernel only sees positions before the centre in raster order: full rows above,
    and the left part of the centre row. Mask "A" also hides the centre itself (a latent
    must not see its own value), mask "B" lets it through.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5, mask_type: str = "A") -> None:
        super().__init__(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask type must be 'A' or 'B', not {mask_type!r}")
        mask = torch.zeros(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[:centre] = 1
        mask[centre, :centre + (mask_type == "B")] = 1
        # Derived from the shape: not stored with the weights.
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.masked_weight(), self.bias)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return (torch.round(x) - x).detach() + x


def standard_layout(t: torch.Tensor) -> torch.Tensor:
    """Return `t` in the standard (N, C, H, W) memory layout.

    torch 2.14.1 on CPU crashes (heap corruption / SIGSEGV) in the backward pass of a 1x1
    stride-2 convolution (CompressAI's ResidualBlockWithStride skip) whose input is in
    channels-last layout. Permuted arrays are channels-last, and so can be a 1-channel
    tensor that `is_contiguous()` (its channel stride is 1): `.contiguous()` is not enough.
    """
    expected, step = [], 1
    for size in reversed(t.shape):
        expected.append(step)
        step *= size
    if t.stride() == tuple(reversed(expected)):
        return t
    return t.clone(memory_format=torch.contiguous_format)
