"""LIC-TCM's latent codec (Liu et al., CVPR 2023): a TCM hyperprior with separate mean and
scale branches and a channel-slice model over 5 slices (optional SWAtten per slice, LRP)."""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import ResidualBlockUpsample, ResidualBlockWithStride, conv3x3, subpel_conv3x3

from mmcodec.latent_codecs.channel_slice import SliceLoopCodec, split_channels
from mmcodec.layers.tcm import SWAtten, TCMStage


def _three_convs(in_ch: int, hidden: list[int], out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(in_ch, hidden[0]), nn.GELU(), conv3x3(hidden[0], hidden[1]), nn.GELU(),
                         conv3x3(hidden[1], out_ch))


class SliceLatentCodec(SliceLoopCodec):
    """y -> bits -> y_hat with a TCM hyperprior and a channel-wise autoregressive model.

    Slice i's mean and scale come from the hyperprior's mean/scale maps and the already
    decoded slices (up to `max_support`); after decoding, LRP adds a bounded correction
    predicted from the same context and the slice itself. Streams: [z, slice 0, ..., slice 4]
    (the coding loop is `SliceLoopCodec`'s, shared with the channel-slice codec of
    ir-vi/ccem). What differs is in the hooks: TCM hyper transforms with separate
    mean/scale branches, per-slice SWAtten and separate mean/scale/LRP networks.
    """

    def __init__(self, M: int, C: int, Z: int, num_slices: int = 5, max_support: int = 5,
                 entropy_hidden: list[int] | None = None, swatten: bool = False, hyper_head_dim: int = 32,
                 hyper_window: int = 4, hyper_depth: int = 2, window: int = 8, atten_inter: int = 128,
                 atten_head_dim: int = 16) -> None:
        super().__init__()
        hidden = list(entropy_hidden or [224, 128])
        self.slice_sizes = split_channels(M, num_slices)
        self.max_support = max_support
        width = 2 * C
        self.h_a = nn.Sequential(ResidualBlockWithStride(M, width, 2),
                                 TCMStage(C, hyper_depth, hyper_head_dim, hyper_window),
                                 conv3x3(width, Z, stride=2))

        def h_s() -> nn.Sequential:
            return nn.Sequential(ResidualBlockUpsample(Z, width, 2),
                                 TCMStage(C, hyper_depth, hyper_head_dim, hyper_window),
                                 subpel_conv3x3(width, M, 2))
        self.h_mean_s, self.h_scale_s = h_s(), h_s()

        support = [M + sum(self.slice_sizes[:min(i, max_support)]) for i in range(num_slices)]

        def atten(ch: int) -> nn.Module:
            return SWAtten(ch, ch, atten_inter, atten_head_dim, window) if swatten else nn.Identity()
        self.mean_atten = nn.ModuleList(atten(s) for s in support)
        self.scale_atten = nn.ModuleList(atten(s) for s in support)
        self.mean_transforms = nn.ModuleList(_three_convs(s, hidden, n) for s, n in zip(support, self.slice_sizes))
        self.scale_transforms = nn.ModuleList(_three_convs(s, hidden, n) for s, n in zip(support, self.slice_sizes))
        self.lrp_transforms = nn.ModuleList(_three_convs(s + n, hidden, n) for s, n in zip(support, self.slice_sizes))
        self.entropy_bottleneck = EntropyBottleneck(Z)
        self.gaussian_conditional = GaussianConditional(None)

    training_z_hat = "ste"   # h_s sees the rounded z the decoder will see

    def _hyper(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

    def _slice_params(self, i: int, hyper: tuple[torch.Tensor, torch.Tensor], decoded: list[torch.Tensor],
                      context_features: None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hyper_means, hyper_scales = hyper
        previous = decoded[:self.max_support]
        mean_support = self.mean_atten[i](torch.cat([hyper_means, *previous], 1))
        scale_support = self.scale_atten[i](torch.cat([hyper_scales, *previous], 1))
        return mean_support, self.scale_transforms[i](scale_support), self.mean_transforms[i](mean_support)

    def _refine(self, i: int, mean_support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        # LRP: predicts part of the quantisation residual; bounded to +-0.5 (one bin).
        return y_hat_slice + 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], 1)))
