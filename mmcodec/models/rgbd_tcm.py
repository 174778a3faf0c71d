"""RGB + depth coding with LIC-TCM (Liu, Sun, Katto, CVPR 2023) and three ways of letting
the side modality into the target's encoder (the RGB-D thesis), plus a decoder-side option.

Single-modality codec (`TCMCodec`):
    g_a: 3 x (residual block, stride 2 -> TCM stage) -> 3x3 conv, stride 2, to M channels
    g_s: mirror with sub-pixel upsampling
    latent codec (mmcodec.latent_codecs.SliceLatentCodec): hyperprior z (TCM stages, window 4) giving mean and
    scale priors; y coded in 5 channel slices, each conditioned on the previous slices
    (optionally through SWAtten) with latent residual prediction (LRP)
    gain units (mmcodec.models.single.GainUnits): one network, `num_rates` rate points.

Pair model (`RGBDTCM`, arch "rgbd_tcm"), `variant`:
    "separate"    one TCMCodec per modality, independent streams (the baseline).
    "concat4"     the target's encoder sees target and side stacked as one 4-channel input.
    "convfusion"  a second analysis pipeline over the side modality; structure-prior fusion
                  modules add its features to the target encoder at two places.
    "prompt"      the target encoder's TCM blocks are prompted: tokens from a small network
                  over the side modality join the keys/values of every attention window;
                  with `rate_prompts`, the thesis's lambda-map prompt network p_a adds
                  prompts made from the rate point (a constant map of its place on the
                  ladder; zero-initialised, so a warm start is unchanged).
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

Depth loss (thesis): gamma * L1 + gradient L1 + (1 - MS-SSIM), in mmcodec.distortion and
chosen by the training config's `distortion: {"depth": "thesis"}`.

The fusion pieces are mmcodec.crossmodal's (input_fusion: 4-channel input, structure-prior
fusion, prompts; transforms: the decoder side); this module wires them.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from compressai.layers import ResidualBlockUpsample, ResidualBlockWithStride, conv3x3, subpel_conv3x3

from mmcodec.crossmodal.input_fusion import ConvPyramid, SideAnalysis, SideCondition, four_channel_input
from mmcodec.latent_codecs.tcm_slices import SliceLatentCodec
from mmcodec.layers.conv import standard_layout
from mmcodec.layers.tcm import StructurePriorFusion, TCMStage
from mmcodec.modalities import CHANNELS
from mmcodec.modality_codec import FeatureHook, GainUnits, ModalityPipeline, stage_fusion
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.tiling import Tiling

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


# ----------------------------------------------------------------------------------------
# Transforms and the single-modality codec
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


class TCMCodec(ModalityPipeline, nn.Module):
    """LIC-TCM with gain units: g_a -> gain -> slice latent codec -> inverse gain -> g_s.

    `in_ch` may exceed `out_ch` (an encoder that also sees a side modality). The conditioning
    `cond` is a `SideCondition` (or None: the codec alone)."""

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

    def encoder_input(self, x: torch.Tensor, cond: SideCondition | None) -> torch.Tensor:
        if cond is None or cond.side_input is None:
            return x
        return four_channel_input(x, cond.side_input)

    def analysis(self, h: torch.Tensor, cond: SideCondition | None, tiling: Tiling | None = None) -> torch.Tensor:
        if cond is None:
            return self.g_a(h)
        return self.g_a(h, cond.prompts, cond.encoder_fuse)

    def synthesis(self, y: torch.Tensor, cond: SideCondition | None, tiling: Tiling | None = None) -> torch.Tensor:
        return self.g_s(y, None if cond is None else cond.decoder_fuse)


# ----------------------------------------------------------------------------------------
# Pair model
# ----------------------------------------------------------------------------------------
class RGBDTCM(PairModel):
    """RGB-D pair coding with LIC-TCM codecs; see the module docstring for the variants."""

    def __init__(self, modalities: list[str] | tuple[str, ...] = ("rgb", "depth"), variant: str = "separate",
                 target: str | None = None, decoder_side: bool = False, preset: str = "small",
                 num_rates: int = 4, fusion_stages: list[int] | tuple[int, ...] = (0, 1),
                 decoder_fusion_stages: list[int] | tuple[int, ...] = (1, 2), prompt_pool: int = 4,
                 rate_prompts: bool = False, **codec_overrides: Any) -> None:
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
            if rate_prompts:   # the thesis's p_a: prompts from the lambda map, added to the side's
                self.rate_prompt_net = ConvPyramid(1, width, cfg["C"])
                for head in self.rate_prompt_net.heads:   # starts at zero: a warm start is unchanged
                    nn.init.zeros_(head.weight)
                    nn.init.zeros_(head.bias)
        self.rate_prompts = bool(rate_prompts) and variant == "prompt"
        if self.decoder_side:
            self.reference_net = ConvPyramid(self.channels[self.side], width, width)
            self.decoder_fusion = nn.ModuleDict({str(i): StructurePriorFusion(width, width)
                                                 for i in self.decoder_fusion_stages})

    # -- conditioning of the target codec -------------------------------------------------
    def _condition(self, side_input: torch.Tensor, side_recon: torch.Tensor | None,
                   rate: torch.Tensor | int | None = None) -> SideCondition:
        """The target's conditioning: from the uncoded side image at the encoder
        (`side_input`, None when decoding) and from the side reconstruction (decoder side);
        with `rate_prompts`, the rate point's lambda map also makes prompts."""
        cond = SideCondition()
        if side_recon is not None and self.decoder_side:
            # Synthesis stage i runs at 1/8, 1/4, 1/2; the pyramid gives 1/2, 1/4, 1/8.
            cond.decoder_fuse = stage_fusion(self.decoder_fusion, self.reference_net(side_recon)[::-1])
        if side_input is None:
            return cond
        if self.variant == "concat4":
            cond.side_input = side_input
        elif self.variant == "convfusion":
            cond.encoder_fuse = stage_fusion(self.encoder_fusion, self.side_analysis(side_input))
        else:
            cond.prompts = self.prompt_net(side_input)
            if self.rate_prompts:
                cond.prompts = [p + q for p, q in zip(cond.prompts, self.rate_prompt_net(self._lambda_map(side_input, rate)))]
        return cond

    def _lambda_map(self, like: torch.Tensor, rate: torch.Tensor | int) -> torch.Tensor:
        """A constant plane per sample: the rate point's position on the ladder, 0 (lowest) .. 1."""
        r = torch.as_tensor(rate, device=like.device).reshape(-1).to(like.dtype)
        level = r / max(self.num_rates - 1, 1)
        return level.view(-1, 1, 1, 1).expand(like.shape[0], 1, *like.shape[-2:])

    # -- PairModel ------------------------------------------------------------------------
    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        if self.variant == "separate":
            outs = {m: self.codecs[m](x[m], rate) for m in self.modalities}
        else:
            t, s = self.target, self.side
            side_out = self.codecs[s](x[s], rate)
            cond = self._condition(x[s], side_out["x_hat"].clamp(0, 1), rate)
            outs = {s: side_out, t: self.codecs[t](x[t], rate, cond)}
        return {"x_hat": {m: outs[m]["x_hat"] for m in self.modalities},
                "likelihoods": {m: outs[m]["likelihoods"] for m in self.modalities}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int) -> CompressedPair:
        coded = {}
        if self.variant == "separate":
            for m in self.modalities:
                coded[m] = self.codecs[m].compress(x[m], rate)
        else:
            t, s = self.target, self.side
            coded[s] = self.codecs[s].compress(x[s], rate)
            coded[t] = self.codecs[t].compress(x[t], rate, self._condition(x[s], coded[s].x_hat, rate))
        return CompressedPair({m: coded[m].strings for m in self.modalities},
                              {m: coded[m].x_hat for m in self.modalities})

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
                cond = self._condition(None, out[self.side]) if (m == self.target and self.decoder_side) else None
                out[m] = self.codecs[m].decompress(streams[m], sizes[m], rate, cond)
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
