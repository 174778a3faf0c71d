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

from mmcodec.latent_codecs import ChannelSliceCodec, MeanScaleHyperprior
from mmcodec.latent_codecs.spatial_context import entropy_parameters_network
from mmcodec.layers import FusionBlock, LiteTransformer


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


class CrossModalHyperprior(MeanScaleHyperprior):
    """Mean-scale hyperprior whose scales and means also see the reference modality's decoded
    latent: CCEM's placement (context in the entropy model) on the separate codec's hyperprior.

    `context_prediction` (two 3x3 convolutions) turns the reference latent (`context_ch`
    channels, same spatial size) into 2M features; `entropy_parameters` (the spatial-context
    codecs' network) maps [h_s(z_hat), those features] to a correction of the scales and means
    that starts at zero, so a hyperprior checkpoint warm-starts this codec key for key and
    codes exactly as before until the context is learned. Only the rate changes: the decoder
    sees the same y_hat. Strings [y, z], as the hyperprior's; every coding path is the
    hyperprior's, with `context` passed through to the parameters.

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
        self.entropy_parameters = entropy_parameters_network(M)

    def _check_context(self, z_hat: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        latent_hw = (4 * z_hat.shape[-2], 4 * z_hat.shape[-1])     # h_a downsamples y by 4
        if context is None:
            raise ValueError("CrossModalHyperprior needs the reference latent as context")
        if tuple(context.shape[-2:]) != latent_hw or context.shape[1] != self.context_ch:
            raise ValueError(f"context is {tuple(context.shape[1:])}, expected ({self.context_ch}, "
                             f"{latent_hw[0]}, {latent_hw[1]})")
        return context

    def _params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hyper = self.h_s(z_hat)
        features = self.context_prediction(self._check_context(z_hat, context))
        delta_scales, delta_means = self.entropy_parameters(torch.cat([hyper, features], 1)).chunk(2, 1)
        hyper_scales, hyper_means = hyper.chunk(2, 1)
        return hyper_scales + delta_scales, hyper_means + delta_means

    def exact_params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integers in units of 2^-ACTIVATION_BITS throughout, as `MeanScaleHyperprior.exact_params`."""
        networks = self._integer_networks
        hyper = self.integer_h_s()(z_hat)
        features = networks.get("context", self.context_prediction)(self._check_context(z_hat, context))
        delta = networks.get("entropy_parameters", self.entropy_parameters).run(torch.cat([hyper, features], 1))
        return (hyper + delta).chunk(2, 1)
