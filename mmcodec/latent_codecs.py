"""Latent codecs: how a latent y becomes bits and back.

A latent codec owns its entropy models and exposes three operations with the same
vocabulary as CompressAI:
- forward(y)            -> y_hat (for the synthesis transform) and likelihoods (for the rate)
- compress(y)           -> list of byte strings, and the y_hat the decoder will reproduce
- decompress(strings, latent_hw) -> y_hat

Cross-modal entropy models (CCEM) extend the same interface with a `context` argument.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from mmcodec.layers import hyper_analysis, hyper_synthesis_mean_scale, ste_round


def quantise_params(t: torch.Tensor, step: float = 1.0 / 256) -> torch.Tensor:
    """Snap entropy parameters to a grid so tiny float differences between runs rarely move
    a value across a CDF-table boundary (see docs/bitstream.md, determinism)."""
    return torch.round(t / step) * step


class MeanScaleHyperprior(nn.Module):
    """Mean-scale Gaussian hyperprior (Minnen et al. 2018 without the autoregressive part).

    z = h_a(y) is coded with a factorised prior; h_s(z_hat) gives a mean and a scale for
    every element of y.
    """

    def __init__(self, M: int, N: int) -> None:
        super().__init__()
        self.h_a = hyper_analysis(M, N)
        self.h_s = hyper_synthesis_mean_scale(N, M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    def _params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._params(z_hat)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        # Rate from additive noise, decoder input from rounding (straight-through): the
        # synthesis transform trains on the values it will see at test time.
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    @torch.no_grad()
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
        if y.shape[0] != 1:
            raise ValueError("compress codes one image at a time")
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        scales, means = self._quantised_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [y_strings[0], z_strings[0]], y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        y_string, z_string = strings
        z_hw = (latent_hw[0] // 4, latent_hw[1] // 4)
        z_hat = self.entropy_bottleneck.decompress([z_string], z_hw)
        scales, means = self._quantised_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return self.gaussian_conditional.decompress([y_string], indexes, means=means)

    def _quantised_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self._params(z_hat)
        return quantise_params(scales), quantise_params(means)
