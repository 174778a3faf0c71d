"""Cross-modal context in the entropy model (CCEM, Wang et al.): the low-frequency context
fusion block (LCFB).

A channel-slice codec (mmcodec.latent_codecs.ChannelSliceCodec) of the dependent modality
receives the reference modality's *decoded* latent (same spatial size) as `context`: a Lite
Transformer extracts its low-frequency features once per image, and for every slice an agent
cross-attention block (queries from the slice's support features, keys/values from the
context) adds a residual to the support features. The residual starts at zero, and
`context=None` skips it (CCEM stage 1, or decoding without the other modality). The decoder
must receive exactly the context the encoder used, which makes decoding bit-exact.

`CrossModalHyperprior` puts the same idea on the mean-scale hyperprior of the separate
codecs: the reference's decoded latent corrects the dependent modality's scales and means
(Lu et al.'s conditional codec with `entropy_context="latent"`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.entropy_adapter import bottleneck_likelihood, bottleneck_medians, gaussian_likelihood
from mmcodec.latent_codecs import (ChannelSliceCodec, code_hyper_latent, decode_hyper_latent,
                                   exact_indexes_and_means, quantise_params)
from mmcodec.latent_codecs.determinism import IntegerNetworkCache
from mmcodec.latent_codecs.spatial_context import ContextHyperprior
from mmcodec.layers import FusionBlock, LiteTransformer, ste_round


class CrossModalSliceCodec(ChannelSliceCodec):
    """`ChannelSliceCodec` whose slice parameters also see another modality's latent (LCFB)."""

    def __init__(self, M: int, N: int, context_ch: int, num_slices: int = 5, support_ch: int = 128,
                 lceb: bool = True, lceb_dim: int = 64, context_dim: int = 64, heads: int = 4, agents: int = 7,
                 lrp: bool = True) -> None:
        super().__init__(M, N, num_slices, support_ch, lceb=lceb, lceb_dim=lceb_dim, heads=heads, lrp=lrp)
        self.context_ch = context_ch
        self.context_extractor = LiteTransformer(context_ch, context_dim, context_dim, heads=max(1, heads // 2))
        self.fusion = nn.ModuleList(FusionBlock(support_ch, context_dim, support_ch, context_dim, heads, agents)
                                    for _ in range(num_slices))

    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is None:
            return None
        if context.shape[-2:] != tuple(latent_hw):
            raise ValueError(f"context is {tuple(context.shape[-2:])}, latent is {tuple(latent_hw)}")
        return self.context_extractor(context)

    def _fuse_context(self, i: int, support: torch.Tensor, context_features: torch.Tensor | None) -> torch.Tensor:
        if context_features is None:
            return support
        return support + self.fusion[i](support, context_features)


class CrossModalHyperprior(ContextHyperprior):
    """Mean-scale hyperprior whose scales and means also see the reference modality's decoded
    latent: CCEM's placement (context in the entropy model) on the separate codec's hyperprior.

    `context_prediction` (two 3x3 convolutions) turns the reference latent (`context_ch`
    channels, same spatial size) into 2M features; the entropy-parameters network of
    `ContextHyperprior` maps [h_s(z_hat), those features] to a correction of the scales and
    means that starts at zero, so a hyperprior checkpoint warm-starts this codec key for key
    and codes exactly as before until the context is learned. Only the rate changes: the
    decoder sees the same y_hat. Strings [y, z], as the hyperprior's.

    Coding runs the integer networks (mmcodec.layers.integer) for h_s, the context
    prediction and the entropy parameters, as `CheckerboardMeanScale` does: the reference
    latent is symbols + exact means times a gain, one IEEE multiply per element, hence the
    same on every platform, and its fixed-point rounding is too.
    """

    def __init__(self, M: int, N: int, context_ch: int) -> None:
        super().__init__(M, N)
        self.context_ch = context_ch
        self.context_prediction = nn.Sequential(nn.Conv2d(context_ch, 2 * M, 3, padding=1), nn.LeakyReLU(),
                                                nn.Conv2d(2 * M, 2 * M, 3, padding=1))
        self.exact_entropy_parameters = True
        self._integer_networks = IntegerNetworkCache()

    def _check_context(self, y_hw: tuple[int, int], context: torch.Tensor | None) -> torch.Tensor:
        if context is None:
            raise ValueError("CrossModalHyperprior needs the reference latent as context")
        if context.shape[-2:] != tuple(y_hw) or context.shape[1] != self.context_ch:
            raise ValueError(f"context is {tuple(context.shape[1:])}, expected ({self.context_ch}, {y_hw[0]}, {y_hw[1]})")
        return context

    def _float_params(self, hyper: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._params(hyper, self.context_prediction(context))

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        context = self._check_context(y.shape[-2:], context)
        hyper, z_likelihoods = self._hyperprior(y)
        scales, means = self._float_params(hyper, context)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def relaxed(self, y: torch.Tensor, z: torch.Tensor, quantise, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder refinement (mmcodec.refine), as `MeanScaleHyperprior.relaxed`."""
        context = self._check_context(y.shape[-2:], context)
        medians = bottleneck_medians(self.entropy_bottleneck)
        z_tilde = quantise(z - medians) + medians
        scales, means = self._float_params(self.h_s(z_tilde), context)
        y_tilde = quantise(y - means) + means
        bits = -(torch.log2(gaussian_likelihood(self.gaussian_conditional, y_tilde, scales, means)).sum()
                 + torch.log2(bottleneck_likelihood(self.entropy_bottleneck, z_tilde)).sum())
        return y_tilde, bits

    def _coding_params(self, z_hat: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gc = self.gaussian_conditional
        if not self.exact_entropy_parameters:
            scales, means = self._float_params(self.h_s(z_hat), context)
            return gc.build_indexes(quantise_params(scales)), quantise_params(means)
        networks = self._integer_networks
        hyper = networks.get("h_s", self.h_s)(z_hat)
        features = networks.get("context", self.context_prediction)(context)
        delta = networks.get("entropy_parameters", self.entropy_parameters).run(torch.cat([hyper, features], 1))
        scales, means = (hyper + delta).chunk(2, 1)
        return exact_indexes_and_means(gc, scales, means, z_hat.dtype)

    @torch.no_grad()
    def compress(self, y: torch.Tensor, z: torch.Tensor | None = None, context: torch.Tensor | None = None
                 ) -> tuple[list[bytes], torch.Tensor]:
        context = self._check_context(y.shape[-2:], context)
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y) if z is None else z)
        indexes, means = self._coding_params(z_hat, context)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [y_strings[0], z_string], y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int], context: torch.Tensor | None = None
                   ) -> torch.Tensor:
        if len(strings) != 2:
            raise ValueError(f"expected 2 strings (y, z), got {len(strings)}")
        context = self._check_context(latent_hw, context)
        y_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        indexes, means = self._coding_params(z_hat, context)
        return self.gaussian_conditional.decompress([y_string], indexes, means=means)
