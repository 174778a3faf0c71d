"""Cross-modal conditioning in the transforms: the current modality's encoder and decoder
see the *decoded* reference (Lu et al., CVPR 2022; see mmcodec.models.lu2022 for the paper).

- Channel-wise alignment (CA): gamma, beta per channel from global pooling over the
  reference and current features; they depend on the current image, so they are side
  information (float16 on the wire, 16 bits each in the training rate).
- Element-wise alignment (EA, ablation): gamma, beta maps from the reference alone; the
  decoder recomputes them, nothing is sent.
- Spatial alignment (SA): window cross-attention (mmcodec.layers.PatchCrossAttention) from
  the current transform's stages to the reference decoder's features; FeatCat (ablation)
  concatenates them instead; "spf"/"spf6" fuse them by the RGB-D thesis's convolutional
  structure-prior fusion (mmcodec.layers.StructurePriorFusion, enhanced spatial attention),
  in the decoder (and the encoder) of a hyperprior codec.
- The reference decoder's stage features come from `DecoderFeatures`, a conditioning object
  for the reference's own synthesis.
- The decoder-side variant of the RGB-D models adds fused features of the reconstructed side
  modality after synthesis stages (mmcodec.modality_codec.stage_fusion, wired in
  mmcodec.models.rgbd_tcm).

Every cross-modal module adds a residual that starts at zero (or gamma=1, beta=0), so a
codec warm-started from separate coding starts from its behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcodec.errors import BitstreamError
from mmcodec.latent_codecs import build_latent_codec
from mmcodec.layers import (PatchCrossAttention, StructurePriorFusion, analysis_transform, conv, deconv,
                            synthesis_transform)
from mmcodec.modality_codec import GainUnits, ModalityPipeline
from mmcodec.tiling import Tiling

# SA placement -> (encoder stages, decoder stages) that get a cross-modal module.
SA_PLACEMENTS = {"none": ((), ()), "1": ((), (3,)), "3": ((), (1, 2, 3)), "6": ((1, 2, 3), (1, 2, 3)),
                 "featcat": ((), (1, 2, 3)), "spf": ((), (1, 2, 3)), "spf6": ((1, 2, 3), (1, 2, 3))}
SIDE_DTYPE = np.dtype("<f2")       # gamma/beta precision on the wire
SIDE_BITS = 16


def fit_to(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Crop or replicate-pad `t` (B, C, H, W) to spatial size `hw` (deterministic)."""
    h, w = t.shape[-2:]
    t = t[..., :hw[0], :hw[1]]
    if h < hw[0] or w < hw[1]:
        t = F.pad(t, (0, max(hw[1] - w, 0), 0, max(hw[0] - h, 0)), mode="replicate")
    return t


def to_side_precision(t: torch.Tensor) -> torch.Tensor:
    """Round to float16 (the transmitted precision), straight-through for the gradient."""
    t = t.clamp(-60000.0, 60000.0)
    return t + (t.half().float() - t).detach()


@dataclass
class DecoderFeatures:
    """Conditioning for a reference codec's synthesis (a GDN synthesis transform): records the
    outputs of up-sampling stages 1-3 (after each deconvolution + IGDN), which the current
    modality's spatial alignment attends to. Same arithmetic as calling g_s whole."""

    features: list[torch.Tensor] = field(default_factory=list)

    def synthesise(self, g_s: nn.Sequential, y: torch.Tensor) -> torch.Tensor:
        self.features = []
        for i, layer in enumerate(g_s):
            y = layer(y)
            if i in (1, 3, 5):
                self.features.append(y)
        return y


class ChannelAlignment(nn.Module):
    """Per-channel gamma, beta from the reference and current features (global pooling)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(conv(2 * ch, ch, 3, 2), nn.LeakyReLU(inplace=True), conv(ch, ch, 3, 2),
                                 nn.LeakyReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, 2 * ch, 1))
        nn.init.zeros_(self.net[-1].weight)   # start at gamma=1, beta=0
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, f_ref: torch.Tensor, f_cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        delta_gamma, beta = self.net(torch.cat([f_ref, f_cur], 1)).chunk(2, 1)
        return 1.0 + delta_gamma, beta


class ElementAlignment(nn.Module):
    """Per-element gamma, beta maps predicted from the reference features (decoder-side)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(conv(ch, ch, 3, 1), nn.LeakyReLU(inplace=True), conv(ch, 2 * ch, 3, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, f_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        delta_gamma, beta = self.net(f_ref).chunk(2, 1)
        return 1.0 + delta_gamma, beta


class FeatureConcat(nn.Module):
    """FeatCat ablation: concatenate the reference features and mix them in with a conv."""

    def __init__(self, in_ch: int, context_ch: int) -> None:
        super().__init__()
        self.mix = conv(in_ch + context_ch, in_ch, 3, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x + self.mix(torch.cat([x, context], 1))


@dataclass
class ReferenceCondition:
    """What the current modality's codec knows of the reference for one image: its decoded
    image's alignment features and its decoder's stage features; the encoder input adds the
    aligned features and the side information (gamma || beta) as it computes them."""

    features: list[torch.Tensor]
    f_ref: torch.Tensor | None
    aligned: torch.Tensor | None = None
    side: torch.Tensor | None = None
    latent: torch.Tensor | None = None       # the reference's decoded latent, fitted to the current one


class ConditionalCodec(ModalityPipeline, nn.Module):
    """The current modality's codec, conditioned on the decoded reference in its transforms.

    Attribute names follow `SingleModalityCodec` (g_a, g_s, gains, latent_codec) so that a
    separate-coding checkpoint of the same modality warm-starts every tensor whose shape did
    not change. `ratio=2` (reference at twice the resolution): stride-1 first convolution and
    last deconvolution (8x latent), stride-2 reference feature encoder.
    """

    def __init__(self, in_ch: int, ref_ch: int, ref_N: int, N: int, M: int, num_rates: int, ca: str, sa: str,
                 align_ch: int, sa_dim: int, window: int, heads: int, ratio: int, context: str = "hyperprior",
                 latent_codec: nn.Module | None = None) -> None:
        """`latent_codec`: one that takes the reference's decoded latent as `context` (an entropy
        model placement, mmcodec.crossmodal.entropy_context) instead of `context`'s own codec."""
        super().__init__()
        self.ca, self.sa, self.align_ch = ca, sa, align_ch
        self.reads_reference_latent = latent_codec is not None
        self.downsampling = 16 // ratio
        A = align_ch
        if ca != "none":
            self.feature_current = nn.Sequential(conv(in_ch, A, 3, 1), nn.LeakyReLU(inplace=True), conv(A, A, 3, 1))
            self.feature_reference = nn.Sequential(conv(ref_ch, A, 3, ratio), nn.LeakyReLU(inplace=True),
                                                   conv(A, A, 3, 1))
            self.alignment = ChannelAlignment(A) if ca == "ca" else ElementAlignment(A)
            self.feature_decoder = nn.Sequential(conv(2 * A, A, 3, 1), nn.LeakyReLU(inplace=True),
                                                 conv(A, in_ch, 3, 1))
        enc_in, dec_out = (2 * A, A) if ca != "none" else (in_ch, in_ch)
        self.g_a = analysis_transform(enc_in, N, M)
        self.g_s = synthesis_transform(M, N, dec_out)
        if ratio == 2:  # 2:1 geometry: the low-resolution modality keeps full resolution in stage 1
            self.g_a[0] = conv(enc_in, N, 5, 1)
            self.g_s[6] = deconv(N, dec_out, 5, 1)
        self.gains = GainUnits(num_rates, M)
        self.latent_codec = latent_codec if latent_codec is not None else build_latent_codec(context, M, N)

        enc_stages, dec_stages = SA_PLACEMENTS[sa]

        def cross() -> nn.Module:
            if sa == "featcat":
                return FeatureConcat(N, ref_N)
            if sa.startswith("spf"):   # the RGB-D thesis's convolutional fusion (SPF with ESA)
                return StructurePriorFusion(N, ref_N)
            return PatchCrossAttention(N, ref_N, dim=sa_dim, heads=heads, window=window, patch=2)

        self.encoder_cross = nn.ModuleDict({str(j): cross() for j in enc_stages})
        self.decoder_cross = nn.ModuleDict({str(j): cross() for j in dec_stages})

    def condition(self, x_ref_hat: torch.Tensor, ref_features: list[torch.Tensor], hw: tuple[int, int],
                  ref_latent: torch.Tensor | None = None) -> ReferenceCondition:
        """The conditioning for an image of size `hw` from the decoded (clamped) reference and,
        for the entropy context, its decoded latent (without gain)."""
        f_ref = None if self.ca == "none" else fit_to(self.feature_reference(x_ref_hat), hw)
        latent = None
        if self.reads_reference_latent:
            if ref_latent is None:
                raise ValueError("this codec's entropy model needs the reference's decoded latent")
            latent = fit_to(ref_latent, (hw[0] // self.downsampling, hw[1] // self.downsampling))
        return ReferenceCondition(ref_features, f_ref, latent=latent)

    def _aligned(self, f_ref: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return gamma * f_ref + beta

    # -- ModalityPipeline hooks ------------------------------------------------------------
    def entropy_context(self, cond: ReferenceCondition) -> torch.Tensor | None:
        return cond.latent

    def encoder_input(self, x: torch.Tensor, cond: ReferenceCondition) -> torch.Tensor:
        """concat(f_cur, aligned reference features); records `aligned` and the side values."""
        if self.ca == "none":
            return x
        f_cur = self.feature_current(x)
        if self.ca == "ca":
            gamma, beta = self.alignment(cond.f_ref, f_cur)
            gamma, beta = to_side_precision(gamma), to_side_precision(beta)
            cond.side = torch.cat([gamma, beta], 1).flatten(1)             # (B, 2 * align_ch)
        else:
            gamma, beta = self.alignment(cond.f_ref)
        cond.aligned = self._aligned(cond.f_ref, gamma, beta)
        return torch.cat([f_cur, cond.aligned], 1)

    def analysis(self, h: torch.Tensor, cond: ReferenceCondition, tiling: Tiling | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.g_a):
            h = layer(h)
            stage = (i + 1) // 2
            if i in (1, 3, 5) and str(stage) in self.encoder_cross:
                # Encoder stage j has the resolution of reference decoder stage 4 - j.
                context = fit_to(cond.features[3 - stage], h.shape[-2:])
                h = self.encoder_cross[str(stage)](h, context)
        return h

    def synthesis(self, y: torch.Tensor, cond: ReferenceCondition, tiling: Tiling | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.g_s):
            y = layer(y)
            stage = (i + 1) // 2
            if i in (1, 3, 5) and str(stage) in self.decoder_cross:
                y = self.decoder_cross[str(stage)](y, fit_to(cond.features[stage - 1], y.shape[-2:]))
        if cond.aligned is not None:
            y = self.feature_decoder(torch.cat([y, cond.aligned], 1))
        return y

    def side_likelihoods(self, cond: ReferenceCondition) -> dict[str, torch.Tensor]:
        if cond.side is None:
            return {}
        # Constant cost: 16 bits per transmitted value, so the RD loss and logs see it.
        return {"side": torch.full_like(cond.side, 2.0 ** -SIDE_BITS).detach()}

    def side_bits(self, cond: ReferenceCondition) -> float | None:
        return None if cond.side is None else SIDE_BITS * cond.side.numel()

    def side_bytes(self, cond: ReferenceCondition) -> bytes:
        return b"" if cond.side is None else cond.side[0].cpu().numpy().astype(SIDE_DTYPE).tobytes()

    def receive_side(self, cond: ReferenceCondition, side: bytes) -> None:
        """Rebuild the aligned features exactly as the decoder does, from the transmitted values."""
        expected = 2 * self.align_ch * SIDE_DTYPE.itemsize if self.ca == "ca" else 0
        if len(side) != expected:
            raise BitstreamError(f"side information is {len(side)} bytes, the model expects {expected}")
        if self.ca == "none":
            return
        if self.ca == "ea":
            cond.aligned = self._aligned(cond.f_ref, *self.alignment(cond.f_ref))
            return
        values = np.frombuffer(side, dtype=SIDE_DTYPE).astype(np.float32)
        if not np.isfinite(values).all():
            raise BitstreamError("corrupted side information (non-finite alignment coefficients)")
        values = torch.from_numpy(values.copy())[None].to(cond.f_ref.device)
        gamma, beta = values[:, :self.align_ch, None, None], values[:, self.align_ch:, None, None]
        cond.aligned = self._aligned(cond.f_ref, gamma, beta)
