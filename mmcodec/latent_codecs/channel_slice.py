"""Channel-slice latent codecs (Minnen & Singh, ICIP 2020): y in channel slices coded in turn."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from mmcodec.entropy_adapter import bottleneck_likelihood, bottleneck_medians, gaussian_likelihood
from mmcodec.latent_codecs.determinism import quantise_params
from mmcodec.latent_codecs.hyperprior import code_hyper_latent, decode_hyper_latent
from mmcodec.layers import LiteTransformer, hyper_analysis, hyper_synthesis_mean_scale, ste_round

def split_channels(channels: int, parts: int) -> list[int]:
    """Near-equal channel slice sizes, larger slices first (e.g. 96 in 5 -> 20, 19, 19, 19, 19)."""
    if not 1 <= parts <= channels:
        raise ValueError(f"cannot split {channels} channels into {parts} slices")
    base, extra = divmod(channels, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class SliceLoopCodec(nn.Module):
    """The channel-wise autoregressive loop (Minnen & Singh, ICIP 2020) shared by every
    channel-slice latent codec: y is cut into `slice_sizes` slices coded one after another,
    each with a Gaussian whose mean and scale depend on the hyperprior and the slices
    already decoded; LRP then refines each decoded slice. Streams: [z, slice 0, ..., n-1].

    Subclasses own `h_a`, `entropy_bottleneck`, `gaussian_conditional` and `slice_sizes`,
    and define the three hooks that differ between entropy models:
    - `_hyper(z_hat)`: the hyper-synthesis output handed to every slice,
    - `_slice_params(i, hyper, decoded, context_features) -> (support, scales, means)`,
    - `_refine(i, support, y_hat_slice)`: LRP (or nothing).
    `_context_features` turns an optional cross-modal `context` into features once per
    image (CCEM); the default accepts none. forward, compress and decompress run the same
    hooks on the same inputs, which is what makes decoding bit-exact.
    """

    slice_sizes: list[int]
    # Training-time z_hat for h_s: "noise" (CompressAI: the bottleneck's noisy z) or "ste"
    # (LIC-TCM: the rounded z the decoder sees, with a straight-through gradient).
    training_z_hat = "noise"

    def _hyper(self, z_hat: torch.Tensor):
        raise NotImplementedError

    def _slice_params(self, i: int, hyper, decoded: list[torch.Tensor], context_features: torch.Tensor | None):
        raise NotImplementedError

    def _refine(self, i: int, support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        return y_hat_slice

    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is not None:
            raise ValueError(f"{type(self).__name__} takes no cross-modal context")
        return None

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables (a PairModel's `update()` does this for every codec it holds)."""
        updated = self.entropy_bottleneck.update(force=force)
        return self.gaussian_conditional.update_scale_table(get_scale_table(), force=force) | updated

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        if self.training_z_hat == "ste":
            medians = bottleneck_medians(self.entropy_bottleneck)
            z_hat = ste_round(z - medians) + medians
        hyper = self._hyper(z_hat)
        ctx = self._context_features(context, y.shape[-2:])
        decoded, likelihoods = [], []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            _, slice_likelihoods = self.gaussian_conditional(y_slice, scales, means)
            likelihoods.append(slice_likelihoods)
            # Later slices and the synthesis see rounded values (straight-through gradient).
            decoded.append(self._refine(i, support, ste_round(y_slice - means) + means))
        return torch.cat(decoded, 1), {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}

    def relaxed(self, y: torch.Tensor, z: torch.Tensor, quantise: Callable[[torch.Tensor], torch.Tensor],
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder refinement (mmcodec.refine): the loop of `compress` with `quantise` in place
        of rounding; returns y_tilde (after LRP) and the estimated bits of (y, z)."""
        medians = bottleneck_medians(self.entropy_bottleneck)
        z_tilde = quantise(z - medians) + medians
        bits = -torch.log2(bottleneck_likelihood(self.entropy_bottleneck, z_tilde)).sum()
        hyper = self._hyper(z_tilde)
        ctx = self._context_features(context, y.shape[-2:])
        decoded: list[torch.Tensor] = []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            y_tilde = quantise(y_slice - means) + means
            bits = bits - torch.log2(gaussian_likelihood(self.gaussian_conditional, y_tilde, scales, means)).sum()
            decoded.append(self._refine(i, support, y_tilde))
        return torch.cat(decoded, 1), bits

    @torch.no_grad()
    def compress(self, y: torch.Tensor, context: torch.Tensor | None = None, z: torch.Tensor | None = None
                 ) -> tuple[list[bytes], torch.Tensor]:
        """`z`: a hyper-latent to code instead of h_a(y) (a refined one, mmcodec.refine)."""
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y) if z is None else z)
        hyper = self._hyper(z_hat)
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
        if len(strings) != len(self.slice_sizes) + 1:
            raise ValueError(f"expected {len(self.slice_sizes) + 1} strings, got {len(strings)}")
        z_string, *slice_strings = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        hyper = self._hyper(z_hat)
        ctx = self._context_features(context, latent_hw)
        decoded: list[torch.Tensor] = []
        for i, slice_string in enumerate(slice_strings):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            scales, means = quantise_params(scales), quantise_params(means)
            indexes = self.gaussian_conditional.build_indexes(scales)
            y_hat_slice = self.gaussian_conditional.decompress([slice_string], indexes, means=means)
            decoded.append(self._refine(i, support, y_hat_slice))
        return torch.cat(decoded, 1)


class ChannelSliceCodec(SliceLoopCodec):
    """Channel-wise conditional entropy model (Minnen & Singh, ICIP 2020) with latent
    residual prediction (LRP), optional LCEB over previous slices and optional cross-modal
    context (CCEM, Wang et al.).

    y (M channels) is cut into `num_slices` slices coded one after another. The Gaussian
    mean and scale of slice i come from a support network over
      - the hyperprior (h_s(z_hat): M scale + M mean channels), and
      - slices 0..i-1 already decoded: raw (Minnen & Singh) or summarised by a Lite
        Transformer (`lceb=True`: global attention + convolution branch, "low-frequency
        context extraction").
    After rounding, LRP adds 0.5*tanh(f(support, y_hat_i)) to reduce the quantisation error.
    `_fuse_context` is where a cross-modal context enters the support features
    (mmcodec.crossmodal.entropy_context: CCEM's LCFB); here there is none.

    Streams: [z, slice 0, ..., slice n-1] (the loop is `SliceLoopCodec`'s).
    """

    def __init__(self, M: int, N: int, num_slices: int = 5, support_ch: int = 128, lceb: bool = True,
                 lceb_dim: int = 64, heads: int = 4, lrp: bool = True) -> None:
        super().__init__()
        self.M, self.num_slices, self.support_ch, self.heads = M, num_slices, support_ch, heads
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

    # -- the SliceLoopCodec hooks ------------------------------------------------------------
    def _hyper(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.h_s(z_hat)

    def _slice_params(self, i: int, hyper: torch.Tensor, decoded: list[torch.Tensor],
                      context_features: torch.Tensor | None):
        parts = [hyper] if i == 0 else [hyper, self.previous[i](torch.cat(decoded, 1))]
        support = self._fuse_context(i, self.support[i](torch.cat(parts, 1)), context_features)
        return support, self.scale_head[i](support), self.mean_head[i](support)

    def _fuse_context(self, i: int, support: torch.Tensor, context_features: torch.Tensor | None) -> torch.Tensor:
        """Slice i's support features with the cross-modal context mixed in (none here)."""
        return support

    def _refine(self, i: int, support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        if self.lrp is None:
            return y_hat_slice
        return y_hat_slice + 0.5 * torch.tanh(self.lrp[i](torch.cat([support, y_hat_slice], 1)))
