"""CCEM: parallel RGB-IR joint codec with a channel-wise cross-modality entropy model.

After Wang, Zhou, Zhang, Chen, Zhang, Wang, Huang, Ma, "End-to-End RGB-IR Joint Image
Compression With Channel-wise Cross-modality Entropy Model" (no public code; built from
the paper's description, see issue 5).

    RGB -> YUV 4:2:0 (BT.601) -> g_a^Y, g_a^U, g_a^V -> concat -> y_rgb ┐ cross-attention
    IR  -------------------------------------------> g_a^IR -> y_ir   ┘ (encoder only)
    y_ir  -> gain -> ChannelSliceCodec (hyperprior + slices + LCEB)            -> ŷ_ir
    y_rgb -> gain -> ChannelSliceCodec (hyperprior + slices + LCEB + LCFB(ŷ_ir)) -> ŷ_rgb
    ŷ_rgb -> g_s^Y, g_s^U, g_s^V -> upsample chroma -> YUV->RGB;  ŷ_ir -> g_s^IR

The cross-modal dependency lives only in the entropy model: IR decodes alone, RGB decodes
given the decoded IR latent, p(ŷ_rgb | ŷ_ir, ẑ_rgb). Transforms are residual blocks with
Swin window self-attention (Cheng 2020 / LIC-TCM style); U and V are half resolution so
their transforms resample once less.

Ablation switches (constructor kwargs): `lceb`, `lcfb`, `cross_attention`,
`exchange_attention` ("agent", our default, or "full": the paper's plain cross-attention in the
encoder exchange), and `direction="rgb_to_ir"` (RGB decodes alone and gives the context for IR).

Two-stage training (paper: ~4%): set the trainer config key `stage`.
  stage "stage1-y" (the paper's stage 1): only the Y channel is fed and reconstructed. The
    U and V encoders see neutral chroma, the Y path (enc_y, the RGB latent's mixing, its
    entropy model, dec_y) trains, and the reconstruction keeps the input's chroma, so the
    RGB-domain MSE measures the Y error alone (plus a constant of the 4:2:0 round trip);
    R_ir = D_ir = 0 as below. Then "joint" trains everything (chroma branches from scratch).
  stage "stage1": only the RGB path trains (`stage_parameters`), forward skips the IR
    encoder/entropy model/decoder, the cross-attention and the LCFB; use a config with
    "modalities": ["rgb"] (if IR is given anyway, its reconstruction is returned as the
    input itself and it has no likelihoods, so R_ir = D_ir = 0 in the RD loss).
  stage "joint" (default): everything trains; warm-start from the stage-1 checkpoint with
    "init_from": "<stage-1 out>/checkpoint.pt". The LCFB and cross-attention outputs start at
    zero, so the joint stage starts exactly from the stage-1 RGB codec.
The trainer passes `stage` to `stage_parameters`, which also switches forward's behaviour.

Presets (`preset` kwarg, any size kwarg overrides it):
  "small": N=64, M=M_ir=120 (5 slices of 24), support 128, attention dim 64, 32 channels
           at 1/2 resolution (the costliest stage) - for CPU training
  "paper": N=192, M=M_ir=320 (5 slices of 64), support 224, attention dim 128
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import (ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, conv3x3,
                               subpel_conv3x3)

from mmcodec.crossmodal.entropy_context import CrossModalSliceCodec
from mmcodec.crossmodal.latent_exchange import LatentExchange
from mmcodec.latent_codecs import ChannelSliceCodec
from mmcodec.layers.tcm import SwinBlock
from mmcodec.modalities import CHANNELS
from mmcodec.modality_codec import GainUnits, ModalityPipeline
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.tiling import Tiling

PRESETS: dict[str, dict[str, int]] = {
    "small": {"N": 64, "M": 120, "M_ir": 120, "support_ch": 128, "attn_dim": 64, "window": 8, "outer_width": 32},
    "paper": {"N": 192, "M": 320, "M_ir": 320, "support_ch": 224, "attn_dim": 128, "window": 8, "outer_width": 192},
}

# --- colour: BT.601 full range (JFIF), chroma 4:2:0 by 2x2 averaging -----------------------
_RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114],
                            [-0.168736, -0.331264, 0.5],
                            [0.5, -0.418688, -0.081312]])
_YUV_TO_RGB = torch.tensor([[1.0, 0.0, 1.402],
                            [1.0, -0.344136, -0.714136],
                            [1.0, 1.772, 0.0]])


def rgb_to_yuv420(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) RGB in [0, 1] -> Y (B, 1, H, W), U and V (B, 1, H/2, W/2), all in [0, 1]."""
    yuv = torch.einsum("oc,bchw->bohw", _RGB_TO_YUV.to(rgb), rgb)
    y, uv = yuv[:, :1], F.avg_pool2d(yuv[:, 1:] + 0.5, 2)
    return y, uv[:, :1], uv[:, 1:]


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_yuv420`: bilinear chroma upsampling (centre-sited, as the averaging)."""
    uv = F.interpolate(torch.cat([u, v], 1), size=y.shape[-2:], mode="bilinear", align_corners=False) - 0.5
    return torch.einsum("oc,bchw->bohw", _YUV_TO_RGB.to(y), torch.cat([y, uv], 1))


# --- transforms ------------------------------------------------------------------------------
def _head_dim(dim: int, target: int = 32) -> int:
    """Largest head size <= target that divides dim."""
    return next(d for d in range(min(target, dim), 0, -1) if dim % d == 0)


def _swin_pair(dim: int, window: int) -> list[nn.Module]:
    """Regular + shifted window self-attention, so information crosses window borders."""
    hd = _head_dim(dim)
    return [SwinBlock(dim, hd, window, mlp_ratio=2), SwinBlock(dim, hd, window, shifted=True, mlp_ratio=2)]


def analysis_branch(in_ch: int, width: int, out_ch: int, downsamplings: int, window: int,
                    outer_width: int | None = None) -> nn.Sequential:
    """Residual blocks with stride, window attention at 1/4 of the input, 2^d downsampling.
    `outer_width` (default `width`) sets the channels at 1/2 resolution, the costliest stage."""
    outer = min(outer_width or width, width)
    layers: list[nn.Module] = [ResidualBlockWithStride(in_ch, outer)]
    for k in range(2, downsamplings):
        layers += [ResidualBlockWithStride(outer if k == 2 else width, width), ResidualBlock(width, width)]
        if k == 2:
            layers += _swin_pair(width, window)
    layers.append(conv3x3(width, out_ch, stride=2))
    return nn.Sequential(*layers)


def synthesis_branch(in_ch: int, width: int, out_ch: int, upsamplings: int, window: int,
                     outer_width: int | None = None) -> nn.Sequential:
    """Mirror of `analysis_branch`: sub-pixel residual upsampling, 2^d upsampling."""
    outer = min(outer_width or width, width)
    layers: list[nn.Module] = [ResidualBlock(in_ch, width)]
    for step in range(upsamplings - 2):
        layers.append(ResidualBlockUpsample(width, width))
        if step == upsamplings - 3:
            layers += _swin_pair(width, window)
        layers.append(ResidualBlock(width, width))
    layers += [ResidualBlockUpsample(width, outer), subpel_conv3x3(outer, out_ch, 2)]
    return nn.Sequential(*layers)


_OTHER = {"rgb": "ir", "ir": "rgb"}


class CCEM(PairModel):
    """RGB-IR joint codec; cross-modal context in the channel-slice entropy model."""

    modalities = ("rgb", "ir")
    channels = {m: CHANNELS[m] for m in modalities}
    multiple = 64
    downsampling = 16
    # Parameter-name prefixes of the RGB path (stage 1), and its cross-modal parts (not stage 1).
    _RGB_PATH = ("enc_y.", "enc_u.", "enc_v.", "rgb_latent.", "gains.rgb.", "latent_codecs.rgb.",
                 "dec_rgb_latent.", "dec_y.", "dec_u.", "dec_v.")
    _CROSS_MODAL = ("latent_codecs.rgb.context_extractor.", "latent_codecs.rgb.fusion.")

    def __init__(self, preset: str = "small", num_rates: int = 4, num_slices: int = 5, lceb: bool = True,
                 lcfb: bool = True, direction: str = "ir_to_rgb", cross_attention: bool = True,
                 exchange_attention: str = "agent", **sizes: int) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        unknown = set(sizes) - set(PRESETS[preset])
        if unknown:
            raise TypeError(f"unknown CCEM size arguments: {', '.join(sorted(unknown))}")
        if direction not in ("ir_to_rgb", "rgb_to_ir"):
            raise ValueError("direction must be 'ir_to_rgb' or 'rgb_to_ir'")
        cfg = {**PRESETS[preset], **sizes}
        N, M, M_ir, window, outer = cfg["N"], cfg["M"], cfg["M_ir"], cfg["window"], cfg["outer_width"]
        self.num_rates, self.lcfb, self.cross_attention = num_rates, lcfb, cross_attention
        # The reference modality decodes alone; the dependent one uses its latent as context.
        self.reference = "ir" if direction == "ir_to_rgb" else "rgb"
        self.dependent = _OTHER[self.reference]
        self.latent_channels = {"rgb": M, "ir": M_ir}
        self.stage = "joint"

        # Analysis: Y at full resolution, U/V at half (one downsampling less), IR.
        m_y = M // 2
        m_u = (M - m_y) // 2
        self.enc_y = analysis_branch(1, N, m_y, 4, window, outer)
        self.enc_u = analysis_branch(1, N // 2, m_u, 3, window, outer)
        self.enc_v = analysis_branch(1, N // 2, M - m_y - m_u, 3, window, outer)
        self.rgb_latent = nn.Sequential(nn.Conv2d(M, M, 1), *_swin_pair(M, window))
        self.enc_ir = nn.Sequential(analysis_branch(1, N, M_ir, 4, window, outer), *_swin_pair(M_ir, window))
        if cross_attention:
            # Encoder-side exchange before quantisation (mmcodec.crossmodal.latent_exchange).
            self.cross = LatentExchange(self.latent_channels, cfg["attn_dim"], attention=exchange_attention)

        def latent_codec(m: str, channels: int) -> nn.Module:
            common = dict(num_slices=num_slices, support_ch=cfg["support_ch"], lceb=lceb, lceb_dim=cfg["attn_dim"])
            if lcfb and m == self.dependent:   # LCFB: the reference's decoded latent as context
                return CrossModalSliceCodec(channels, N, self.latent_channels[_OTHER[m]],
                                            context_dim=cfg["attn_dim"], **common)
            return ChannelSliceCodec(channels, N, **common)

        self.gains = nn.ModuleDict({m: GainUnits(num_rates, c) for m, c in self.latent_channels.items()})
        self.latent_codecs = nn.ModuleDict({m: latent_codec(m, c) for m, c in self.latent_channels.items()})

        # Synthesis: one transform per channel (Y, U, V) from the shared YUV latent, and IR.
        self.dec_rgb_latent = nn.Sequential(*_swin_pair(M, window))
        self.dec_y = synthesis_branch(M, N, 1, 4, window, outer)
        self.dec_u = synthesis_branch(M, N // 2, 1, 3, window, outer)
        self.dec_v = synthesis_branch(M, N // 2, 1, 3, window, outer)
        self.dec_ir = nn.Sequential(*_swin_pair(M_ir, window), synthesis_branch(M_ir, N, 1, 4, window, outer))

    # -- stages ---------------------------------------------------------------------------
    STAGES = ("stage1-y", "stage1", "joint")

    def set_stage(self, stage: str) -> None:
        if stage not in self.STAGES:
            raise ValueError(f"unknown CCEM training stage {stage!r} (use {', '.join(map(repr, self.STAGES))})")
        self.stage = stage

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        """'stage1': the RGB path without its cross-modal parts; 'stage1-y': that path without
        its chroma branches; 'joint': everything. Also switches forward to the stage's
        behaviour (the trainer calls this once)."""
        self.set_stage(stage)
        if stage == "joint":
            return super().stage_parameters(stage)
        chroma = ("enc_u.", "enc_v.", "dec_u.", "dec_v.") if stage == "stage1-y" else ()
        return [p for n, p in self.named_parameters()
                if n.startswith(self._RGB_PATH) and not n.startswith(self._CROSS_MODAL + chroma)
                and not n.endswith(".quantiles")]

    def requires(self, only: str) -> set[str]:
        if only not in self.modalities:
            raise ValueError(f"unknown modality {only!r}")
        return {only, self.reference} if (self.lcfb and only == self.dependent) else {only}

    # -- transforms -----------------------------------------------------------------------
    def _analyse(self, x: dict[str, torch.Tensor], with_ir: bool) -> dict[str, torch.Tensor]:
        # Every plane enters the transforms centred on 0 (mid-grey / neutral chroma = 0), so an
        # untrained decoder's ~0 output already means grey rather than a strong colour cast.
        y, u, v = (p - 0.5 for p in rgb_to_yuv420(x["rgb"]))
        if self.stage == "stage1-y":     # Y only: the chroma branches see neutral planes
            u, v = torch.zeros_like(u), torch.zeros_like(v)
        latents = {"rgb": self.rgb_latent(torch.cat([self.enc_y(y), self.enc_u(u), self.enc_v(v)], 1))}
        if with_ir:
            latents["ir"] = self.enc_ir(x["ir"] - 0.5)
            if self.cross_attention:
                latents = self.cross(latents)
        return latents

    def _synthesise(self, modality: str, y_hat: torch.Tensor) -> torch.Tensor:
        if modality == "ir":
            return self.dec_ir(y_hat) + 0.5
        features = self.dec_rgb_latent(y_hat)
        if self.stage == "stage1-y":     # the Y plane alone (forward adds the input's chroma)
            return self.dec_y(features) + 0.5
        return yuv420_to_rgb(self.dec_y(features) + 0.5, self.dec_u(features) + 0.5, self.dec_v(features) + 0.5)

    def _luma_only(self, y_plane: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """Stage 1-Y's reconstruction: the decoded Y with the input's own (4:2:0) chroma."""
        _, u, v = rgb_to_yuv420(rgb)
        return yuv420_to_rgb(y_plane, u.detach(), v.detach())

    def _order(self, present) -> list[str]:
        """Coding order: the reference modality first (its latent is the other's context)."""
        return [m for m in (self.reference, self.dependent) if m in present]

    def _context(self, modality: str, decoded: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if self.lcfb and modality == self.dependent:
            return decoded.get(self.reference)
        return None

    def modality_latent_codec(self, modality: str) -> nn.Module | None:
        return self.latent_codecs[modality]

    def _path(self, modality: str) -> "_ModalityPath":
        return _ModalityPath(self, modality)

    # -- PairModel ------------------------------------------------------------------------
    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        with_ir = self.stage == "joint"
        if with_ir and "ir" not in x:
            raise ValueError("joint stage needs both 'rgb' and 'ir' inputs")
        latents = self._analyse(x, with_ir)
        decoded, outs = {}, {}
        for m in self._order(latents):
            outs[m] = self._path(m)(None, rate, self._context(m, decoded), analysed=latents[m])
            decoded[m] = outs[m]["latent"]
        x_hat = {m: o["x_hat"] for m, o in outs.items()}
        if self.stage == "stage1-y":
            x_hat["rgb"] = self._luma_only(x_hat["rgb"], x["rgb"])
        if not with_ir and "ir" in x:
            x_hat["ir"] = x["ir"].detach()   # stage 1: no IR rate or distortion
        return {"x_hat": x_hat, "likelihoods": {m: o["likelihoods"] for m, o in outs.items()}}

    # -- encoder refinement (mmcodec.refine): both latents together, in the YUV 4:2:0 domain
    # the model codes, with the RGB latent's cross-modal context following the refined IR.
    def encoder_latents(self, x: dict[str, torch.Tensor], rate: int) -> dict[str, dict[str, torch.Tensor]]:
        return {m: self._path(m).encoder_latents(None, rate, analysed=t)
                for m, t in self._analyse(x, with_ir=True).items()}

    def relaxed_forward(self, x: dict[str, torch.Tensor], latents: dict[str, dict[str, torch.Tensor]], rate: int,
                        quantise) -> dict:
        decoded, outs = {}, {}
        for m in self._order(latents):
            outs[m] = self._path(m).relaxed_forward(latents[m], rate, quantise, cond=self._context(m, decoded))
            decoded[m] = outs[m]["latent"]
        return {"x_hat": {m: o["x_hat"] for m, o in outs.items()}, "bits": {m: o["bits"] for m, o in outs.items()}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int,
                 latents: dict[str, dict[str, torch.Tensor]] | None = None) -> CompressedPair:
        """`latents`: refined latents per modality (mmcodec.refine) to code instead of the encoders'."""
        analysed = self._analyse(x, with_ir=True) if latents is None else None
        coded, decoded = {}, {}
        for m in self._order(self.modalities):
            coded[m] = self._path(m).compress(None, rate, self._context(m, decoded),
                                              latents=None if latents is None else latents[m],
                                              analysed=None if analysed is None else analysed[m])
            decoded[m] = coded[m].latent
        return CompressedPair({m: coded[m].strings for m in self.modalities},
                              {m: coded[m].x_hat for m in self.modalities})

    @torch.no_grad()
    def decompress(self, streams: dict[str, list[bytes]], side: bytes, sizes: dict[str, tuple[int, int]],
                   rate: int, only: str | None = None) -> dict[str, torch.Tensor]:
        needed = self.requires(only) if only is not None else set(self.modalities)
        decoded: dict[str, torch.Tensor] = {}
        for m in self._order(needed):
            decoded[m] = self._path(m).decode_latent(streams[m], sizes[m], rate, self._context(m, decoded))
        wanted = (only,) if only is not None else self.modalities
        return {m: self._path(m).reconstruct(decoded[m]) for m in wanted}


class _ModalityPath(ModalityPipeline):
    """One modality's `ModalityPipeline` through CCEM's modules: a view, so the modules keep
    their checkpoint names (gains.<mod>, latent_codecs.<mod>). The analysis is joint (both
    latents, with the exchange before quantisation), so every call passes `analysed`; `cond`
    is the entropy model's cross-modal context (the reference's decoded latent) or None."""

    def __init__(self, model: CCEM, modality: str) -> None:
        self.model, self.modality = model, modality
        self.gains, self.latent_codec = model.gains[modality], model.latent_codecs[modality]
        self.downsampling = model.downsampling

    def __call__(self, *args, **kwargs) -> dict:
        return self.forward(*args, **kwargs)

    def analysis(self, h: torch.Tensor, cond: torch.Tensor | None, tiling: Tiling | None = None) -> torch.Tensor:
        raise TypeError("CCEM analyses both modalities together: pass `analysed`")

    def synthesis(self, y_hat: torch.Tensor, cond: torch.Tensor | None, tiling: Tiling | None = None) -> torch.Tensor:
        return self.model._synthesise(self.modality, y_hat)

    def entropy_context(self, cond: torch.Tensor | None) -> torch.Tensor | None:
        return cond
