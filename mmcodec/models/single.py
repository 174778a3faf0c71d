"""Single-modality learned codec with variable rate: the building block of separate coding
and the reference codec of Lu et al.

Ballé/Minnen analysis and synthesis transforms, a mean-scale hyperprior, and gain units
(Cui et al., "Asymmetric Gained Deep Image Compression", CVPR 2021): y is scaled by a
learned per-channel gain for the chosen rate before quantisation and by an inverse gain
after, so one network serves every rate point.

`context` picks the latent codec's context (mmcodec.latent_codecs): "hyperprior" (none,
the shipped models), "checkerboard" (He et al. 2021, two parallel passes),
"autoregressive" (Minnen et al. 2018, serial: slow to code on a CPU) or "channel-slice"
(Minnen & Singh 2020, slices coded in turn). The two spatial context codecs keep the
hyperprior's parameter names and start as the plain hyperprior, so a "hyperprior"
checkpoint warm-starts them.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from mmcodec.latent_codecs import build_latent_codec
from mmcodec.layers import analysis_transform, synthesis_transform
from mmcodec.tiling import Tiling, apply_analysis, apply_synthesis


class GainUnits(nn.Module):
    """Per-rate, per-channel gains applied to the latent and undone after quantisation."""

    def __init__(self, num_rates: int, channels: int) -> None:
        super().__init__()
        # Start one level apart = quantisation step x1/sqrt(2), matching lambda doubling per level.
        init = torch.tensor([2.0 ** ((r - (num_rates - 1)) / 2) for r in range(num_rates)])
        self.gain = nn.Parameter(init[:, None].repeat(1, channels))
        self.inverse_gain = nn.Parameter((1.0 / init)[:, None].repeat(1, channels))

    def scale(self, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return y * self.gain[rate][:, :, None, None]

    def unscale(self, y_hat: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return y_hat * self.inverse_gain[rate][:, :, None, None]


class SingleModalityCodec(nn.Module):
    """g_a -> gain -> latent codec (hyperprior, optionally with a spatial context) ->
    inverse gain -> g_s."""

    downsampling = 16

    def __init__(self, in_ch: int = 3, N: int = 64, M: int = 96, num_rates: int = 5,
                 context: str = "hyperprior") -> None:
        super().__init__()
        self.in_ch, self.M, self.context = in_ch, M, context
        self.g_a = analysis_transform(in_ch, N, M)
        self.g_s = synthesis_transform(M, N, in_ch)
        self.gains = GainUnits(num_rates, M)
        self.latent_codec = build_latent_codec(context, M, N)

    def forward(self, x: torch.Tensor, rate: torch.Tensor) -> dict:
        y = self.gains.scale(self.g_a(x), rate)
        y_hat, likelihoods = self.latent_codec(y)
        return {"x_hat": self.g_s(self.gains.unscale(y_hat, rate)), "likelihoods": likelihoods}

    # -- encoder refinement (mmcodec.refine): the latents the stream carries, as free variables
    def encoder_latents(self, x: torch.Tensor, rate: int, tiling: Tiling | None = None) -> dict[str, torch.Tensor]:
        """What the encoder would code: the gained latent y and the hyper-latent z = h_a(y)."""
        r = torch.tensor([rate], device=x.device)
        y = self.gains.scale(apply_analysis(self.g_a, x, tiling), r)
        return {"y": y, "z": self.latent_codec.h_a(y)}

    def relaxed_forward(self, latents: dict[str, torch.Tensor], rate: int,
                        quantise: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_tilde, estimated bits) from free latents, differentiable (mmcodec.refine)."""
        if not hasattr(self.latent_codec, "relaxed"):
            raise NotImplementedError(f"encoder refinement needs the hyperprior latent codec, not {self.context!r}")
        y_tilde, bits = self.latent_codec.relaxed(latents["y"], latents["z"], quantise)
        r = torch.tensor([rate], device=y_tilde.device)
        return self.g_s(self.gains.unscale(y_tilde, r)), bits

    def compress(self, x: torch.Tensor, rate: int, tiling: Tiling | None = None,
                 latents: dict[str, torch.Tensor] | None = None) -> tuple[list[bytes], torch.Tensor]:
        """With `tiling`, the transforms run tile by tile (mmcodec.tiling); the streams stay whole.
        With `latents` (refined y and z, mmcodec.refine), those are coded instead of g_a(x)'s."""
        r = torch.tensor([rate], device=x.device)
        if latents is None:
            y = self.gains.scale(apply_analysis(self.g_a, x, tiling), r)
            strings, y_hat = self.latent_codec.compress(y)
        else:
            strings, y_hat = self.latent_codec.compress(latents["y"], latents["z"])
        x_hat = apply_synthesis(self.g_s, self.gains.unscale(y_hat, r), tiling).clamp_(0, 1)
        return strings, x_hat

    def decompress(self, strings: list[bytes], hw: tuple[int, int], rate: int,
                   tiling: Tiling | None = None) -> torch.Tensor:
        latent_hw = (hw[0] // self.downsampling, hw[1] // self.downsampling)
        y_hat = self.latent_codec.decompress(strings, latent_hw)
        r = torch.tensor([rate], device=y_hat.device)
        return apply_synthesis(self.g_s, self.gains.unscale(y_hat, r), tiling).clamp_(0, 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lambda_ladder(num_rates: int, low: float = 0.0018, high: float = 0.0483) -> list[float]:
    """Geometric ladder of lambdas between CompressAI's quality-1 and quality-6 values."""
    if num_rates == 1:
        return [math.sqrt(low * high)]
    return [low * (high / low) ** (i / (num_rates - 1)) for i in range(num_rates)]
