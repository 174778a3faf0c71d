"""Single-modality learned codec with variable rate: the building block of separate coding
and the reference codec of Lu et al.

Ballé/Minnen analysis and synthesis transforms, a mean-scale hyperprior, and gain units
(mmcodec.modality_codec.GainUnits): y is scaled by a learned per-channel gain for the chosen
rate before quantisation and by an inverse gain after, so one network serves every rate point.

`context` picks the latent codec's context (mmcodec.latent_codecs): "hyperprior" (none,
the shipped models), "checkerboard" (He et al. 2021, two parallel passes),
"autoregressive" (Minnen et al. 2018, serial: slow to code on a CPU) or "channel-slice"
(Minnen & Singh 2020, slices coded in turn). The two spatial context codecs keep the
hyperprior's parameter names and start as the plain hyperprior, so a "hyperprior"
checkpoint warm-starts them.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from mmcodec.crossmodal.transforms import DecoderFeatures
from mmcodec.latent_codecs import build_latent_codec
from mmcodec.layers import analysis_transform, synthesis_transform
from mmcodec.modality_codec import GainUnits, ModalityPipeline
from mmcodec.tiling import Tiling, apply_synthesis

__all__ = ["GainUnits", "SingleModalityCodec", "count_parameters", "lambda_ladder"]


class SingleModalityCodec(ModalityPipeline, nn.Module):
    """g_a -> gain -> latent codec (hyperprior, optionally with a spatial context) ->
    inverse gain -> g_s: the plain `ModalityPipeline` (mmcodec.modality_codec) with Ballé
    transforms. As a reference codec (Lu et al.), `cond` may be a `DecoderFeatures`, which
    records the synthesis stage outputs the other modality attends to."""

    def __init__(self, in_ch: int = 3, N: int = 64, M: int = 96, num_rates: int = 5,
                 context: str = "hyperprior", transform_N: int | None = None) -> None:
        """N: hyperprior width (z channels) and, unless `transform_N` is given, the width of
        the analysis and synthesis transforms too; M: latent channels."""
        super().__init__()
        self.in_ch, self.M, self.context = in_ch, M, context
        T = transform_N or N
        self.g_a = analysis_transform(in_ch, T, M)
        self.g_s = synthesis_transform(M, T, in_ch)
        self.gains = GainUnits(num_rates, M)
        self.latent_codec = build_latent_codec(context, M, N)

    def synthesis(self, y_hat: torch.Tensor, cond: Any, tiling: Tiling | None = None) -> torch.Tensor:
        if isinstance(cond, DecoderFeatures):
            return cond.synthesise(self.g_s, y_hat)
        return apply_synthesis(self.g_s, y_hat, tiling)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lambda_ladder(num_rates: int, low: float = 0.0018, high: float = 0.0483) -> list[float]:
    """Geometric ladder of lambdas between CompressAI's quality-1 and quality-6 values."""
    if num_rates == 1:
        return [math.sqrt(low * high)]
    return [low * (high / low) ** (i / (num_rates - 1)) for i in range(num_rates)]
