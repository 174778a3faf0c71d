"""RGB + depth coding with LIC-TCM (Liu, Sun, Katto, CVPR 2023) and three ways of letting
the side modality into the target's encoder (the RGB-D thesis), plus a decoder-side option.

Single-modality codec (`TCMCodec`):
    g_a: 3 x (residual block, stride 2 -> TCM stage) -> 3x3 conv, stride 2, to M channels
    g_s: mirror with sub-pixel upsampling
    latent codec (`SliceLatentCodec`): hyperprior z (TCM stages, window 4) giving mean and
    scale priors; y coded in 5 channel slices, each conditioned on the previous slices
    (optionally through SWAtten) with latent residual prediction (LRP)
    gain units (mmcodec.models.single.GainUnits): one network, `num_rates` rate points.

Pair model (`RGBDTCM`, arch "rgbd_tcm"), `variant`:
    "separate"    one TCMCodec per modality, independent streams (the baseline).
    "concat4"     the target's encoder sees target and side stacked as one 4-channel input.
    "convfusion"  a second analysis pipeline over the side modality; structure-prior fusion
                  modules add its features to the target encoder at two places.
    "prompt"      the target encoder's TCM blocks are prompted: tokens from a small network
                  over the side modality join the keys/values of every attention window.
In the thesis the side modality only helps the encoder and is not sent. In an mmcodec pair
stream both modalities are coded: the side modality by its own codec (the pair's bpp counts
both). Encoder-only fusion keeps the target decodable from its own stream alone.
`decoder_side=True` (any variant but "separate") also feeds the side modality's
*reconstruction* to the target's synthesis transform through fusion modules (as in Lu et al.
2022); then decoding the target needs the side stream too.

Warm starts: every variant names its codecs `codecs.rgb` / `codecs.depth` like "separate",
and fusion modules start as the identity, so `init_from=<rgb-d/separate>` copies the
baseline (the 4-channel input conv of "concat4" excepted); stage "fusion" trains only the
fusion parts (the thesis freezes the depth codec for convfusion).

Depth loss (thesis): gamma * L1 + gradient L1 + (1 - MS-SSIM), in mmcodec.train.loss and
chosen by the training config's `distortion: {"depth": "thesis"}`; `depth_distortion` and
`rgbd_rd_loss` here are shortcuts to it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import ResidualBlockUpsample, ResidualBlockWithStride, conv3x3, subpel_conv3x3

from mmcodec.latent_codecs import SliceLoopCodec, split_channels
from mmcodec.layers.tcm import StructurePriorFusion, SWAtten, TCMStage
from mmcodec.modalities import CHANNELS
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.single import GainUnits

VARIANTS = ("separate", "concat4", "convfusion", "prompt")
DEFAULT_TARGET = {"concat4": "depth", "convfusion": "depth", "prompt": "rgb"}

# C: channels per TCM branch (blocks are 2C wide); M: latent; Z: hyper-latent.
# Sizes per codec (torch.utils.flop_counter, forward pass, MACs per pixel of the input):
#   small : RGB codec 7.29 M parameters, 128 kMAC/px; separate RGB-D pair 14.58 M, 255 kMAC/px
#   thesis: RGB codec 45.18 M parameters (the thesis's figure), 560 kMAC/px; pair 90.35 M, 1116 kMAC/px
PRESETS: dict[str, dict[str, Any]] = {
    # CPU preset (about 5x the MACs of the N=64/M=96 hyperprior codec of ir-vi/separate, 24 kMAC/px).
    "small": {"C": 32, "M": 120, "Z": 96, "depths": [2, 2, 2], "head_dims": [8, 16, 16], "hyper_head_dim": 16,
              "window": 8, "hyper_window": 4, "num_slices": 5, "max_support": 5, "entropy_hidden": [96, 64],
              "swatten": False, "atten_inter": 64, "atten_head_dim": 16},
    # The thesis / LIC-TCM "small" setting (N = 64, M = 320, z with 192 channels, SWAtten).
    "thesis": {"C": 64, "M": 320, "Z": 192, "depths": [2, 2, 2], "head_dims": [8, 16, 32], "hyper_head_dim": 32,
               "window": 8, "hyper_window": 4, "num_slices": 5, "max_support": 5, "entropy_hidden": [224, 128],
               "swatten": True, "atten_inter": 128, "atten_head_dim": 16},
    # For unit tests only.
    "tiny": {"C": 8, "M": 20, "Z": 16, "depths": [2, 2, 2], "head_dims": [8, 8, 8], "hyper_head_dim": 8,
             "window": 8, "hyper_window": 4, "num_slices": 5, "max_support": 5, "entropy_hidden": [16, 16],
             "swatten": False, "atten_inter": 16, "atten_head_dim": 8},
}

FeatureHook = Callable[[int, torch.Tensor], torch.Tensor]


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


# ----------------------------------------------------------------------------------------
# Transforms
# ----------------------------------------------------------------------------------------
class TCMAnalysis(nn.Module):
    """g_a: stage i = residual block (stride 2) + TCM stage, at 1/2, 1/4, 1/8; then a stride-2
    conv to M. `prompts[i]` feeds prompted stages; `fuse(i, features)` may modify the
    features after stage i (encoder-side fusion)."""

    def __init__(self, in_ch: int, C: int, M: int, depths: list[int], head_dims: list[int],
                 window: int = 8, prompt_pool: int = 0) -> None:
        super().__init__()
        width = 2 * C
        self.downs = nn.ModuleList([ResidualBlockWithStride(in_ch if i == 0 else width, width, 2) for i in range(3)])
        self.stages = nn.ModuleList(TCMStage(C, depths[i], head_dims[i], window, prompt_pool) for i in range(3))
        self.to_latent = conv3x3(width, M, stride=2)

    def forward(self, x: torch.Tensor, prompts: list[torch.Tensor] | None = None,
                fuse: FeatureHook | None = None) -> torch.Tensor:
        x = standard_layout(x)
        for i, (down, stage) in enumerate(zip(self.downs, self.stages)):
            x = stage(down(x), prompts[i] if prompts is not None else None)
            if fuse is not None:
                x = fuse(i, x)
        return self.to_latent(x)


class TCMSynthesis(nn.Module):
    """g_s: stage i = residual block with sub-pixel upsampling + TCM stage, at 1/8, 1/4,
    1/2; then a sub-pixel conv to the image. `fuse(i, features)` runs after stage i."""

    def __init__(self, out_ch: int, C: int, M: int, depths: list[int], head_dims: list[int],
                 window: int = 8) -> None:
        super().__init__()
        width = 2 * C
        self.ups = nn.ModuleList([ResidualBlockUpsample(M if i == 0 else width, width, 2) for i in range(3)])
        self.stages = nn.ModuleList(TCMStage(C, d, h, window) for d, h in zip(depths[::-1], head_dims[::-1]))
        self.to_image = subpel_conv3x3(width, out_ch, 2)

    def forward(self, y: torch.Tensor, fuse: FeatureHook | None = None) -> torch.Tensor:
        x = y
        for i, (up, stage) in enumerate(zip(self.ups, self.stages)):
            x = stage(up(x))
            if fuse is not None:
                x = fuse(i, x)
        return self.to_image(x)


# ----------------------------------------------------------------------------------------
# Entropy model: hyperprior + channel slices + LRP
# ----------------------------------------------------------------------------------------
def _three_convs(in_ch: int, hidden: list[int], out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(in_ch, hidden[0]), nn.GELU(), conv3x3(hidden[0], hidden[1]), nn.GELU(),
                         conv3x3(hidden[1], out_ch))


class SliceLatentCodec(SliceLoopCodec):
    """y -> bits -> y_hat with a TCM hyperprior and a channel-wise autoregressive model.

    Slice i's mean and scale come from the hyperprior's mean/scale maps and the already
    decoded slices (up to `max_support`); after decoding, LRP adds a bounded correction
    predicted from the same context and the slice itself. Streams: [z, slice 0, ..., slice 4]
    (the coding loop is mmcodec.latent_codecs.SliceLoopCodec's, shared with CCEM's
    ChannelSliceCodec). What differs is in the hooks: TCM hyper transforms with separate
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


# ----------------------------------------------------------------------------------------
# Single-modality codec
# ----------------------------------------------------------------------------------------
class TCMCodec(nn.Module):
    """LIC-TCM with gain units: g_a -> gain -> slice latent codec -> inverse gain -> g_s.

    `in_ch` may exceed `out_ch` (an encoder that also sees a side modality)."""

    downsampling = 16

    def __init__(self, in_ch: int, out_ch: int | None = None, num_rates: int = 4, prompt_pool: int = 0,
                 C: int = 32, M: int = 120, Z: int = 96, depths: list[int] | None = None,
                 head_dims: list[int] | None = None, hyper_head_dim: int = 16, window: int = 8,
                 hyper_window: int = 4, num_slices: int = 5, max_support: int = 5,
                 entropy_hidden: list[int] | None = None, swatten: bool = False, atten_inter: int = 64,
                 atten_head_dim: int = 16) -> None:
        super().__init__()
        depths = list(depths or [2, 2, 2])
        head_dims = list(head_dims or [8, 16, 16])
        self.in_ch, self.out_ch, self.M = in_ch, out_ch or in_ch, M
        self.g_a = TCMAnalysis(in_ch, C, M, depths, head_dims, window, prompt_pool)
        self.g_s = TCMSynthesis(self.out_ch, C, M, depths, head_dims, window)
        self.gains = GainUnits(num_rates, M)
        self.latent_codec = SliceLatentCodec(M, C, Z, num_slices, max_support, entropy_hidden, swatten,
                                             hyper_head_dim, hyper_window, depths[0], window, atten_inter,
                                             atten_head_dim)

    def forward(self, x: torch.Tensor, rate: torch.Tensor, prompts: list[torch.Tensor] | None = None,
                enc_fuse: FeatureHook | None = None, dec_fuse: FeatureHook | None = None) -> dict:
        y = self.gains.scale(self.g_a(x, prompts, enc_fuse), rate)
        y_hat, likelihoods = self.latent_codec(y)
        return {"x_hat": self.g_s(self.gains.unscale(y_hat, rate), dec_fuse), "likelihoods": likelihoods}

    @torch.no_grad()
    def compress(self, x: torch.Tensor, rate: int, prompts: list[torch.Tensor] | None = None,
                 enc_fuse: FeatureHook | None = None,
                 dec_fuse: FeatureHook | None = None) -> tuple[list[bytes], torch.Tensor]:
        r = torch.tensor([rate], device=x.device)
        y = self.gains.scale(self.g_a(x, prompts, enc_fuse), r)
        strings, y_hat = self.latent_codec.compress(y)
        return strings, self.g_s(self.gains.unscale(y_hat, r), dec_fuse).clamp_(0, 1)

    @torch.no_grad()
    def decompress(self, strings: list[bytes], hw: tuple[int, int], rate: int,
                   dec_fuse: FeatureHook | None = None) -> torch.Tensor:
        y_hat = self.latent_codec.decompress(strings, (hw[0] // self.downsampling, hw[1] // self.downsampling))
        r = torch.tensor([rate], device=y_hat.device)
        return self.g_s(self.gains.unscale(y_hat, r), dec_fuse).clamp_(0, 1)


# ----------------------------------------------------------------------------------------
# Side-modality networks
# ----------------------------------------------------------------------------------------
class SideAnalysis(nn.Module):
    """The second analysis pipeline of "convfusion": features of the side modality at the
    resolutions of the target encoder's stages 0..num_stages-1 (1/2, 1/4, 1/8)."""

    def __init__(self, in_ch: int, C: int, num_stages: int, depths: list[int], head_dims: list[int],
                 window: int) -> None:
        super().__init__()
        width = 2 * C
        self.downs = nn.ModuleList(ResidualBlockWithStride(in_ch if i == 0 else width, width, 2)
                                   for i in range(num_stages))
        self.stages = nn.ModuleList(TCMStage(C, depths[i], head_dims[i], window) for i in range(num_stages))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = standard_layout(x), []
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x))
            feats.append(x)
        return feats


class ConvPyramid(nn.Module):
    """Cheap feature pyramid (stride-2 3x3 convs): features at 1/2, 1/4, 1/8 of the input.
    Used for prompt maps (encoder) and for the decoder-side reference features."""

    def __init__(self, in_ch: int, width: int, out_ch: int) -> None:
        super().__init__()
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch if i == 0 else width, width, 3, 2, 1), nn.GELU())
                                   for i in range(3))
        self.heads = nn.ModuleList(nn.Conv2d(width, out_ch, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = standard_layout(x), []
        for down, head in zip(self.downs, self.heads):
            x = down(x)
            feats.append(head(x))
        return feats


# ----------------------------------------------------------------------------------------
# Pair model
# ----------------------------------------------------------------------------------------
class RGBDTCM(PairModel):
    """RGB-D pair coding with LIC-TCM codecs; see the module docstring for the variants."""

    def __init__(self, modalities: list[str] | tuple[str, ...] = ("rgb", "depth"), variant: str = "separate",
                 target: str | None = None, decoder_side: bool = False, preset: str = "small",
                 num_rates: int = 4, fusion_stages: list[int] | tuple[int, ...] = (0, 1),
                 decoder_fusion_stages: list[int] | tuple[int, ...] = (1, 2), prompt_pool: int = 4,
                 **codec_overrides: Any) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        unknown = set(codec_overrides) - set(PRESETS[preset])
        if unknown:
            raise ValueError(f"unknown RGBDTCM arguments: {', '.join(sorted(unknown))}")
        self.modalities = tuple(modalities)
        if len(self.modalities) != 2 or any(m not in CHANNELS for m in self.modalities):
            raise ValueError(f"RGBDTCM codes a pair of modalities, got {self.modalities}")
        self.channels = {m: CHANNELS[m] for m in self.modalities}
        self.num_rates = num_rates
        self.variant = variant
        self.decoder_side = bool(decoder_side) and variant != "separate"
        if variant == "separate":
            self.target = self.side = None
        else:
            self.target = target or DEFAULT_TARGET[variant]
            if self.target not in self.modalities:
                raise ValueError(f"target {self.target!r} is not one of {self.modalities}")
            self.side = next(m for m in self.modalities if m != self.target)
        cfg = {**PRESETS[preset], **codec_overrides}
        self.fusion_stages = sorted(int(i) for i in fusion_stages)
        self.decoder_fusion_stages = sorted(int(i) for i in decoder_fusion_stages)
        width = 2 * cfg["C"]

        def codec(m: str) -> TCMCodec:
            in_ch = self.channels[m]
            pool = 0
            if m == self.target and variant == "concat4":
                in_ch += self.channels[self.side]
            if m == self.target and variant == "prompt":
                pool = prompt_pool
            return TCMCodec(in_ch, self.channels[m], num_rates, pool, **cfg)

        self.codecs = nn.ModuleDict({m: codec(m) for m in self.modalities})
        if variant == "convfusion":
            self.side_analysis = SideAnalysis(self.channels[self.side], cfg["C"], max(self.fusion_stages) + 1,
                                              cfg["depths"], cfg["head_dims"], cfg["window"])
            self.encoder_fusion = nn.ModuleDict({str(i): StructurePriorFusion(width, width)
                                                 for i in self.fusion_stages})
        if variant == "prompt":
            # Prompts live in the attention branch: C channels, like the tokens they join.
            self.prompt_net = ConvPyramid(self.channels[self.side], width, cfg["C"])
        if self.decoder_side:
            self.reference_net = ConvPyramid(self.channels[self.side], width, width)
            self.decoder_fusion = nn.ModuleDict({str(i): StructurePriorFusion(width, width)
                                                 for i in self.decoder_fusion_stages})

    # -- conditioning hooks ---------------------------------------------------------------
    def _encoder_conditioning(self, side_input: torch.Tensor, target_input: torch.Tensor) -> dict[str, Any]:
        """Arguments for the target codec's encoder, from the (uncoded) side modality."""
        if self.variant == "concat4":
            return {"x": torch.cat([target_input, side_input], 1)}
        if self.variant == "convfusion":
            feats = self.side_analysis(side_input)
            fusion = self.encoder_fusion

            def fuse(i: int, f: torch.Tensor) -> torch.Tensor:
                return fusion[str(i)](f, feats[i]) if str(i) in fusion else f
            return {"x": target_input, "enc_fuse": fuse}
        return {"x": target_input, "prompts": self.prompt_net(side_input)}

    def _decoder_conditioning(self, side_recon: torch.Tensor) -> FeatureHook | None:
        """Hook for the target's synthesis from the side modality's reconstruction."""
        if not self.decoder_side:
            return None
        # Synthesis stage i runs at 1/8, 1/4, 1/2; the pyramid gives 1/2, 1/4, 1/8.
        feats = self.reference_net(side_recon)[::-1]
        fusion = self.decoder_fusion

        def fuse(i: int, f: torch.Tensor) -> torch.Tensor:
            return fusion[str(i)](f, feats[i]) if str(i) in fusion else f
        return fuse

    # -- PairModel ------------------------------------------------------------------------
    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        if self.variant == "separate":
            outs = {m: self.codecs[m](x[m], rate) for m in self.modalities}
        else:
            t, s = self.target, self.side
            side_out = self.codecs[s](x[s], rate)
            dec_fuse = self._decoder_conditioning(side_out["x_hat"].clamp(0, 1)) if self.decoder_side else None
            outs = {s: side_out,
                    t: self.codecs[t](rate=rate, dec_fuse=dec_fuse, **self._encoder_conditioning(x[s], x[t]))}
        return {"x_hat": {m: outs[m]["x_hat"] for m in self.modalities},
                "likelihoods": {m: outs[m]["likelihoods"] for m in self.modalities}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int) -> CompressedPair:
        streams, x_hat = {}, {}
        if self.variant == "separate":
            for m in self.modalities:
                streams[m], x_hat[m] = self.codecs[m].compress(x[m], rate)
        else:
            t, s = self.target, self.side
            streams[s], x_hat[s] = self.codecs[s].compress(x[s], rate)
            dec_fuse = self._decoder_conditioning(x_hat[s])
            streams[t], x_hat[t] = self.codecs[t].compress(rate=rate, dec_fuse=dec_fuse,
                                                           **self._encoder_conditioning(x[s], x[t]))
        return CompressedPair({m: streams[m] for m in self.modalities}, {m: x_hat[m] for m in self.modalities})

    @torch.no_grad()
    def decompress(self, streams: dict[str, list[bytes]], side: bytes, sizes: dict[str, tuple[int, int]],
                   rate: int, only: str | None = None) -> dict[str, torch.Tensor]:
        wanted = self.modalities if only is None else (only,)
        needed = set().union(*(self.requires(m) for m in wanted))
        out: dict[str, torch.Tensor] = {}
        if self.side is not None and self.side in needed:
            out[self.side] = self.codecs[self.side].decompress(streams[self.side], sizes[self.side], rate)
        for m in self.modalities:
            if m in needed and m not in out:
                conditioned = m == self.target and self.decoder_side
                dec_fuse = self._decoder_conditioning(out[self.side]) if conditioned else None
                out[m] = self.codecs[m].decompress(streams[m], sizes[m], rate, dec_fuse)
        return {m: out[m] for m in wanted}

    def requires(self, only: str) -> set[str]:
        if only == self.target and self.decoder_side:
            return {self.target, self.side}
        return {only}

    def stage_parameters(self, stage: str) -> list[torch.nn.Parameter]:
        """"joint": everything. "fusion": only what the baseline codecs lack (side pipelines,
        fusion modules, prompt nets and prompt norms), for training on top of a frozen,
        warm-started baseline."""
        params = [(n, p) for n, p in self.named_parameters() if not n.endswith(".quantiles")]
        if stage == "fusion":
            return [p for n, p in params if not n.startswith("codecs.") or ".prompt_norm." in n]
        return [p for _, p in params]


# ----------------------------------------------------------------------------------------
# Depth loss (thesis): implemented in mmcodec.train.loss (config key `distortion`); these
# names stay for callers of this module.
# ----------------------------------------------------------------------------------------
def depth_distortion(x_hat: torch.Tensor, x: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Thesis depth loss per sample: gamma * L1 + gradient L1 + (1 - MS-SSIM), holes excluded
    from the L1 terms (mmcodec.train.loss.thesis_distortion)."""
    from mmcodec.train.loss import thesis_distortion
    return thesis_distortion(x_hat, x, gamma)


def rgbd_rd_loss(out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor,
                 modality_weight: dict[str, float] | None = None,
                 depth_loss: str = "thesis") -> dict[str, torch.Tensor]:
    """mmcodec.train.loss.rd_loss with `distortion={"depth": depth_loss}` (what the trainer
    runs for a config with that key)."""
    from mmcodec.train.loss import rd_loss
    return rd_loss(out, x, lam, modality_weight, {"depth": depth_loss} if "depth" in x else {})
