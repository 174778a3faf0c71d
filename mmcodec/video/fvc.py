"""FVC-style P-frame coding in feature space (Hu, Lu, Xu, CVPR 2021), and Lu et al.'s
infrared-guided visible variant (CVPR 2022, supplement Fig. S9).

One modality's P-frame codec (`FVCModalityCodec`):

    F_t   = extract(x_t)                       features at 1/2 resolution
    F_ref = extract(x_{t-1}_hat)               from the *decoded integer* previous frame
    O     = motion_estimation(F_t, F_ref)      motion features, coded by a hyperprior AE
    O_hat -> offsets -> deform_conv2d(F_ref)   deformable motion compensation -> F_pred
    R     = F_t - F_pred                       feature residual, coded by a second hyperprior AE
    F_hat = F_pred + R_hat
    F_out = F_hat + fusion(F_hat, F_ref, F_ref2)   multi-frame fusion (two previous frames)
    x_hat = x_{t-1}_hat + reconstruct(F_out)   (a pixel skip from the previous decoded frame)

References are extracted from the decoded frames after rounding to integers, so the state a
decoder carries from frame to frame is the integer frame itself: if its CRC matches, the next
frame's prediction starts from the encoder's values exactly (float drift cannot accumulate).
The latents' entropy parameters come from their own hyper-latents only (the integer h_s of
MeanScaleHyperprior), so entropy decoding never depends on float references at all.

The Lu2022 visible codec (`cross=True`) adds, for the visible modality only:
- channel-wise alignment (mmcodec.crossmodal.transforms.ChannelAlignment): gamma, beta per
  channel from the decoded infrared features of the same frame and the visible prediction;
  both are known to the decoder, so nothing is transmitted; the aligned infrared features
  enter the motion compensation's refinement;
- spatial alignment (window cross-attention, PatchCrossAttention) after the residual
  decoder's first two stages, attending to the infrared residual decoder's stage features.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.models.base import get_scale_table
from torchvision.ops import deform_conv2d

from mmcodec.crossmodal.transforms import ChannelAlignment
from mmcodec.latent_codecs import MeanScaleHyperprior
from mmcodec.layers import PatchCrossAttention, conv, deconv
from mmcodec.layers.conv import ResidualBlock
from mmcodec.modality_codec import GainUnits, rate_tensor

PADDING = 64   # feature /2, autoencoder /8, hyper-latent /4


def _encoder(C: int, N: int, M: int) -> nn.Sequential:
    return nn.Sequential(conv(C, N, 3, 2), nn.LeakyReLU(inplace=True), conv(N, N, 3, 2),
                         nn.LeakyReLU(inplace=True), conv(N, M, 3, 2))


def _decoder(M: int, N: int, C: int) -> nn.Sequential:
    return nn.Sequential(deconv(M, N, 3, 2), nn.LeakyReLU(inplace=True), deconv(N, N, 3, 2),
                         nn.LeakyReLU(inplace=True), deconv(N, C, 3, 2))


class LatentAE(nn.Module):
    """Feature-space autoencoder with a mean-scale hyperprior and per-rate gains."""

    def __init__(self, C: int, N: int, M: int, num_rates: int) -> None:
        super().__init__()
        self.enc, self.dec = _encoder(C, N, M), _decoder(M, N, C)
        self.gains = GainUnits(num_rates, M)
        self.latent_codec = MeanScaleHyperprior(M, N)

    def forward(self, f: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y_hat, likelihoods = self.latent_codec(self.gains.scale(self.enc(f), rate))
        return self.gains.unscale(y_hat, rate), likelihoods

    def compress(self, f: torch.Tensor, rate: int) -> tuple[list[bytes], torch.Tensor]:
        r = rate_tensor(rate, f.device)
        strings, y_hat = self.latent_codec.compress(self.gains.scale(self.enc(f), r))
        return strings, self.gains.unscale(y_hat, r)

    def decompress(self, strings: list[bytes], feature_hw: tuple[int, int], rate: int) -> torch.Tensor:
        y_hat = self.latent_codec.decompress(strings, (feature_hw[0] // 8, feature_hw[1] // 8))
        return self.gains.unscale(y_hat, rate_tensor(rate, y_hat.device))

    def decode_stages(self, latent: torch.Tensor, hook: Any = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The decoder, recording the outputs of its first two up-sampling stages (the
        infrared side's context for the visible SA) and letting `hook(stage, f)` modify them."""
        stages = []
        h = latent
        for i, layer in enumerate(self.dec):
            h = layer(h)
            if i in (1, 3):
                stage = (i + 1) // 2
                if hook is not None:
                    h = hook(stage, h)
                stages.append(h)
        return h, stages


@dataclass
class FrameState:
    """What a decoder keeps between frames of one modality: features of the last two decoded
    frames (newest first)."""

    refs: list[torch.Tensor] = field(default_factory=list)


@dataclass
class CrossContext:
    """The decoded infrared frame as the visible codec sees it (Lu2022)."""

    features: torch.Tensor               # infrared F_out of the same frame
    stages: list[torch.Tensor]           # infrared residual decoder stage outputs


class FVCModalityCodec(nn.Module):
    def __init__(self, in_ch: int, C: int = 64, N: int = 64, M: int = 96, num_rates: int = 4,
                 deform_groups: int = 8, cross: bool = False, ref_C: int = 64, ref_N: int = 64,
                 sa_dim: int = 32, heads: int = 2, window: int = 4) -> None:
        super().__init__()
        self.in_ch, self.C, self.groups, self.cross = in_ch, C, deform_groups, cross
        self.extract = nn.Sequential(conv(in_ch, C, 5, 2), nn.LeakyReLU(inplace=True), ResidualBlock(C, C))
        self.motion_estimation = nn.Sequential(conv(2 * C, C, 3, 1), nn.LeakyReLU(inplace=True), conv(C, C, 3, 1))
        self.motion = LatentAE(C, N, M, num_rates)
        self.offsets = conv(C, deform_groups * 2 * 9, 3, 1)
        nn.init.zeros_(self.offsets.weight)   # start as a plain 3x3 convolution of the reference
        nn.init.zeros_(self.offsets.bias)
        # Start as the identity (centre tap): the first prediction is the reference itself,
        # the right guess for mostly static surveillance scenes.
        self.deform_weight = nn.Parameter(torch.zeros(C, C, 3, 3))
        with torch.no_grad():
            self.deform_weight[:, :, 1, 1] = torch.eye(C)
        self.deform_bias = nn.Parameter(torch.zeros(C))
        refine_in = 3 * C if cross else 2 * C
        self.refine = nn.Sequential(conv(refine_in, C, 3, 1), nn.LeakyReLU(inplace=True), conv(C, C, 3, 1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.residual = LatentAE(C, N, M, num_rates)
        self.fusion = nn.Sequential(conv(3 * C, C, 3, 1), nn.LeakyReLU(inplace=True), conv(C, C, 3, 1))
        nn.init.zeros_(self.fusion[-1].weight)
        nn.init.zeros_(self.fusion[-1].bias)
        # The frame decoder adds to the previous decoded frame (a pixel skip, zero at the start):
        # with a CPU-size training budget, "copy the last frame" is the starting point that
        # already beats intra coding on static backgrounds; the features code what changed.
        self.reconstruct = nn.Sequential(ResidualBlock(C, C), deconv(C, in_ch, 5, 2))
        nn.init.zeros_(self.reconstruct[-1].weight)
        nn.init.zeros_(self.reconstruct[-1].bias)
        if cross:
            self.ref_project = conv(ref_C, C, 3, 1)
            self.alignment = ChannelAlignment(C)
            self.sa = nn.ModuleDict({str(s): PatchCrossAttention(N, ref_N, dim=sa_dim, heads=heads, window=window,
                                                                 patch=2) for s in (1, 2)})

    # -- shared pieces ------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract(x)

    def compensate(self, motion_hat: torch.Tensor, ref: torch.Tensor,
                   cross: CrossContext | None) -> torch.Tensor:
        warped = deform_conv2d(ref, self.offsets(motion_hat), self.deform_weight, self.deform_bias, padding=1)
        parts = [warped, ref]
        if self.cross:
            # Channel-wise affine of the decoded infrared features, as Lu's image codec (CA).
            f_ir = self.ref_project(cross.features)
            gamma, beta = self.alignment(f_ir, warped)
            parts.append(gamma * f_ir + beta)
        return warped + self.refine(torch.cat(parts, 1))

    def _sa_hook(self, cross: CrossContext | None):
        if not self.cross:
            return None
        return lambda stage, h: self.sa[str(stage)](h, cross.stages[stage - 1])

    def _output(self, f_hat: torch.Tensor, refs: list[torch.Tensor]) -> torch.Tensor:
        older = refs[1] if len(refs) > 1 else refs[0]
        return f_hat + self.fusion(torch.cat([f_hat, refs[0], older], 1))

    # -- training -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, refs: list[torch.Tensor], prev: torch.Tensor, rate: torch.Tensor,
                cross: CrossContext | None = None, motion_only: bool = False) -> dict[str, Any]:
        """One P-frame: {"x_hat", "likelihoods", "features" (F_out), "stages"}. `motion_only`
        (FVC's first stage): reconstruct from the motion-compensated prediction alone."""
        f = self.features(x)
        motion_latent, lik_m = self.motion(self.motion_estimation(torch.cat([f, refs[0]], 1)), rate)
        motion_hat = self.motion.dec(motion_latent)
        f_pred = self.compensate(motion_hat, refs[0], cross)
        if motion_only:
            return {"x_hat": prev + self.reconstruct(f_pred), "likelihoods": {"motion_y": lik_m["y"], "motion_z": lik_m["z"]},
                    "features": f_pred, "stages": []}
        r_latent, lik_r = self.residual(f - f_pred, rate)
        r_hat, stages = self.residual.decode_stages(r_latent, self._sa_hook(cross))
        f_out = self._output(f_pred + r_hat, refs)
        return {"x_hat": prev + self.reconstruct(f_out), "features": f_out, "stages": stages,
                "likelihoods": {"motion_y": lik_m["y"], "motion_z": lik_m["z"],
                                "residual_y": lik_r["y"], "residual_z": lik_r["z"]}}

    # -- coding ---------------------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, x: torch.Tensor, refs: list[torch.Tensor], prev: torch.Tensor, rate: int,
                 cross: CrossContext | None = None) -> tuple[list[bytes], dict[str, Any]]:
        """Code one P-frame (batch 1); the reconstruction is computed from the decoded latents
        exactly as `decompress` computes it."""
        f = self.features(x)
        m_strings, motion_latent = self.motion.compress(self.motion_estimation(torch.cat([f, refs[0]], 1)), rate)
        motion_hat = self.motion.dec(motion_latent)
        f_pred = self.compensate(motion_hat, refs[0], cross)
        r_strings, r_latent = self.residual.compress(f - f_pred, rate)
        return m_strings + r_strings, self._finish(f_pred, r_latent, refs, prev, cross)

    @torch.no_grad()
    def decompress(self, strings: list[bytes], refs: list[torch.Tensor], prev: torch.Tensor, rate: int,
                   cross: CrossContext | None = None) -> dict[str, Any]:
        if not strings:
            return self.skipped(prev)
        if len(strings) != 4:
            raise ValueError(f"a P-frame has 4 stream parts (or none: skipped), got {len(strings)}")
        hw = tuple(refs[0].shape[-2:])
        motion_hat = self.motion.dec(self.motion.decompress(strings[:2], hw, rate))
        f_pred = self.compensate(motion_hat, refs[0], cross)
        return self._finish(f_pred, self.residual.decompress(strings[2:], hw, rate), refs, prev, cross)

    @torch.no_grad()
    def skipped(self, prev: torch.Tensor) -> dict[str, Any]:
        """A skipped P-frame (no stream parts): the previous decoded frame repeated. Its
        features and residual-decoder stages (those of a zero residual latent) are what an
        infrared frame gives the visible codec of Lu2022, computed alike by both sides."""
        f = self.features(prev)
        M = self.residual.gains.gain.shape[1]
        _, stages = self.residual.decode_stages(f.new_zeros(f.shape[0], M, f.shape[-2] // 8, f.shape[-1] // 8))
        return {"x_hat": prev, "features": f, "stages": stages}

    def _finish(self, f_pred: torch.Tensor, r_latent: torch.Tensor, refs: list[torch.Tensor], prev: torch.Tensor,
                cross: CrossContext | None) -> dict[str, Any]:
        r_hat, stages = self.residual.decode_stages(r_latent, self._sa_hook(cross))
        f_out = self._output(f_pred + r_hat, refs)
        return {"x_hat": (prev + self.reconstruct(f_out)).clamp_(0, 1), "features": f_out, "stages": stages}


class VideoPairModel(nn.Module):
    """Infrared and visible P-frame codecs. `arch` "separate": independent FVC per modality
    (the control); "lu2022": infrared first, the visible codec conditioned on it."""

    modalities = ("ir", "rgb")      # coding order: infrared first (Lu2022 reads it)
    channels = {"rgb": 3, "ir": 1}

    def __init__(self, arch: str = "separate", C: int = 64, N: int = 64, M: int = 96, num_rates: int = 4,
                 deform_groups: int = 8, sa_dim: int = 32, heads: int = 2, window: int = 4) -> None:
        super().__init__()
        if arch not in ("separate", "lu2022"):
            raise ValueError(f"video architecture must be 'separate' or 'lu2022', not {arch!r}")
        self.arch, self.num_rates = arch, num_rates
        self.codecs = nn.ModuleDict({
            "ir": FVCModalityCodec(1, C, N, M, num_rates, deform_groups),
            "rgb": FVCModalityCodec(3, C, N, M, num_rates, deform_groups, cross=arch == "lu2022", ref_C=C, ref_N=N,
                                    sa_dim=sa_dim, heads=heads, window=window)})

    @property
    def cross(self) -> bool:
        return self.arch == "lu2022"

    def requires(self, only: str) -> set[str]:
        """Modalities a decoder must decode to output `only`."""
        return {"ir", "rgb"} if (only == "rgb" and self.cross) else {only}

    def update(self, force: bool = True) -> None:
        for codec in self.codecs.values():
            for ae in (codec.motion, codec.residual):
                ae.latent_codec.entropy_bottleneck.update(force=force)
                ae.latent_codec.gaussian_conditional.update_scale_table(get_scale_table(), force=force)

    def aux_loss(self) -> torch.Tensor:
        return sum(ae.latent_codec.entropy_bottleneck.loss() for c in self.codecs.values()
                   for ae in (c.motion, c.residual))
