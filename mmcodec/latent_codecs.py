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
from compressai.models.base import get_scale_table

from mmcodec.layers import hyper_analysis, hyper_synthesis_mean_scale, ste_round
from mmcodec.layers import AgentFusionBlock, LiteTransformer


def quantise_params(t: torch.Tensor, step: float = 1.0 / 256) -> torch.Tensor:
    """Snap entropy parameters to a grid so tiny float differences between runs rarely move
    a value across a CDF-table boundary (see docs/bitstream.md, determinism)."""
    return torch.round(t / step) * step


def code_hyper_latent(entropy_bottleneck: EntropyBottleneck, z: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    """Entropy-code the hyper-latent of one image; return its string and z_hat exactly as the
    decoder will reconstruct it (the entropy models downstream must see the same values)."""
    if z.shape[0] != 1:
        raise ValueError("compress codes one image at a time")
    strings = entropy_bottleneck.compress(z)
    return strings[0], entropy_bottleneck.decompress(strings, z.shape[-2:])


def decode_hyper_latent(entropy_bottleneck: EntropyBottleneck, z_string: bytes,
                        latent_hw: tuple[int, int]) -> torch.Tensor:
    """z_hat for a latent y of size latent_hw: h_a downsamples y by 4."""
    return entropy_bottleneck.decompress([z_string], (latent_hw[0] // 4, latent_hw[1] // 4))


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
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y))
        scales, means = self._quantised_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [y_strings[0], z_string], y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        y_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        scales, means = self._quantised_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return self.gaussian_conditional.decompress([y_string], indexes, means=means)

    def _quantised_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self._params(z_hat)
        return quantise_params(scales), quantise_params(means)


def split_channels(channels: int, parts: int) -> list[int]:
    """Near-equal channel slice sizes, larger slices first (e.g. 96 in 5 -> 20, 19, 19, 19, 19)."""
    if not 1 <= parts <= channels:
        raise ValueError(f"cannot split {channels} channels into {parts} slices")
    base, extra = divmod(channels, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class ChannelSliceCodec(nn.Module):
    """Channel-wise conditional entropy model (Minnen & Singh, ICIP 2020) with latent
    residual prediction (LRP), optional LCEB over previous slices and optional cross-modal
    context (CCEM, Wang et al.).

    y (M channels) is cut into `num_slices` slices coded one after another. The Gaussian
    mean and scale of slice i come from a support network over
      - the hyperprior (h_s(z_hat): M scale + M mean channels), and
      - slices 0..i-1 already decoded: raw (Minnen & Singh) or summarised by a Lite
        Transformer (`lceb=True`: global attention + convolution branch, "low-frequency
        context extraction").
    With `context_ch > 0`, a `context` tensor (another modality's decoded latent, same
    spatial size) can be passed to forward/compress/decompress: a Lite Transformer extracts
    its low-frequency features once, and per slice an agent cross-attention block (LCFB:
    queries from this slice's support features, keys/values from the context) adds a
    residual to the support features. The residual starts at zero, and `context=None`
    simply skips it (stage-1 training, or decoding without the other modality).
    After rounding, LRP adds 0.5*tanh(f(support, y_hat_i)) to reduce the quantisation error.

    Streams: [z, slice 0, ..., slice n-1]. The decoder must receive exactly the context the
    encoder used (the other modality's *decoded* latent), which makes decoding bit-exact.
    """

    def __init__(self, M: int, N: int, num_slices: int = 5, support_ch: int = 128, lceb: bool = True,
                 lceb_dim: int = 64, context_ch: int = 0, context_dim: int = 64, heads: int = 4,
                 agents: int = 7, lrp: bool = True) -> None:
        super().__init__()
        self.M, self.num_slices, self.context_ch = M, num_slices, context_ch
        self.slice_sizes = split_channels(M, num_slices)
        self.h_a = hyper_analysis(M, N)
        self.h_s = hyper_synthesis_mean_scale(N, M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

        before = [sum(self.slice_sizes[:i]) for i in range(num_slices)]
        self.previous = nn.ModuleList(
            LiteTransformer(before[i], lceb_dim, lceb_dim, heads=max(1, heads // 2)) if (lceb and i > 0)
            else nn.Identity() for i in range(num_slices))
        previous_ch = [0] + [lceb_dim if lceb else before[i] for i in range(1, num_slices)]
        self.support = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * M + previous_ch[i], support_ch, 3, padding=1), nn.GELU(),
                          nn.Conv2d(support_ch, support_ch, 3, padding=1), nn.GELU())
            for i in range(num_slices))
        self.mean_head = nn.ModuleList(nn.Conv2d(support_ch, s, 3, padding=1) for s in self.slice_sizes)
        self.scale_head = nn.ModuleList(nn.Conv2d(support_ch, s, 3, padding=1) for s in self.slice_sizes)
        self.lrp = nn.ModuleList(
            nn.Sequential(nn.Conv2d(support_ch + s, support_ch // 2, 3, padding=1), nn.GELU(),
                          nn.Conv2d(support_ch // 2, s, 3, padding=1)) for s in self.slice_sizes) if lrp else None
        if context_ch:
            self.context_extractor = LiteTransformer(context_ch, context_dim, context_dim, heads=max(1, heads // 2))
            self.fusion = nn.ModuleList(AgentFusionBlock(support_ch, context_dim, support_ch, context_dim, heads, agents)
                                        for _ in range(num_slices))

    # -- shared by forward, compress and decompress (same ops => bit-exact decoding) -------
    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is None:
            return None
        if not self.context_ch:
            raise ValueError("this slice codec was built without cross-modal context (context_ch=0)")
        if context.shape[-2:] != tuple(latent_hw):
            raise ValueError(f"context is {tuple(context.shape[-2:])}, latent is {tuple(latent_hw)}")
        return self.context_extractor(context)

    def _slice_params(self, i: int, hyper: torch.Tensor, decoded: list[torch.Tensor],
                      context_features: torch.Tensor | None):
        parts = [hyper] if i == 0 else [hyper, self.previous[i](torch.cat(decoded, 1))]
        support = self.support[i](torch.cat(parts, 1))
        if context_features is not None:
            support = support + self.fusion[i](support, context_features)
        return support, self.scale_head[i](support), self.mean_head[i](support)

    def _refine(self, i: int, support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        if self.lrp is None:
            return y_hat_slice
        return y_hat_slice + 0.5 * torch.tanh(self.lrp[i](torch.cat([support, y_hat_slice], 1)))

    # -- CompressAI-style interface --------------------------------------------------------
    def update(self, force: bool = False) -> bool:
        """Build the CDF tables (a PairModel's `update()` does this for every codec it holds)."""
        updated = self.entropy_bottleneck.update(force=force)
        return self.gaussian_conditional.update_scale_table(get_scale_table(), force=force) | updated

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = self.h_s(z_hat)
        ctx = self._context_features(context, y.shape[-2:])
        decoded, likelihoods = [], []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            _, slice_likelihoods = self.gaussian_conditional(y_slice, scales, means)
            likelihoods.append(slice_likelihoods)
            # Later slices and the synthesis see rounded values (straight-through gradient).
            decoded.append(self._refine(i, support, ste_round(y_slice - means) + means))
        return torch.cat(decoded, 1), {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}

    @torch.no_grad()
    def compress(self, y: torch.Tensor, context: torch.Tensor | None = None) -> tuple[list[bytes], torch.Tensor]:
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y))
        hyper = self.h_s(z_hat)
        ctx = self._context_features(context, y.shape[-2:])
        strings, decoded = [z_string], []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            scales, means = quantise_params(scales), quantise_params(means)
            indexes = self.gaussian_conditional.build_indexes(scales)
            strings.append(self.gaussian_conditional.compress(y_slice, indexes, means=means)[0])
            # Exactly what the decoder reconstructs: integer symbols + the same means.
            y_hat_slice = self.gaussian_conditional.quantize(y_slice, "dequantize", means)
            decoded.append(self._refine(i, support, y_hat_slice))
        return strings, torch.cat(decoded, 1)

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int],
                   context: torch.Tensor | None = None) -> torch.Tensor:
        if len(strings) != self.num_slices + 1:
            raise ValueError(f"expected {self.num_slices + 1} strings, got {len(strings)}")
        z_string, *slice_strings = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        hyper = self.h_s(z_hat)
        ctx = self._context_features(context, latent_hw)
        decoded: list[torch.Tensor] = []
        for i, slice_string in enumerate(slice_strings):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            scales, means = quantise_params(scales), quantise_params(means)
            indexes = self.gaussian_conditional.build_indexes(scales)
            y_hat_slice = self.gaussian_conditional.decompress([slice_string], indexes, means=means)
            decoded.append(self._refine(i, support, y_hat_slice))
        return torch.cat(decoded, 1)
