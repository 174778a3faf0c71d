"""Lu, Zhong, Geng, Hu, Xu: "Learning based Multi-modality Image and Video Compression",
CVPR 2022 -- cross-modal conditioning in the *transforms*.

One modality, the reference (visible by default), is coded alone with the same
`SingleModalityCodec` as the separate baseline, so a trained baseline warm-starts it key for
key (`codecs.<reference>.*`) and can be frozen. The other, the current modality, is coded
conditioned on the *decoded* reference:

- Channel-wise alignment (CA): small feature encoders turn the reconstructed reference and
  the current image into `align_ch` (64) feature maps; convolutions + global average
  pooling over both give per-channel gamma, beta and `aligned = gamma * f_ref + beta`. The
  current encoder codes concat(f_cur, aligned); its decoder output is concatenated with
  `aligned` and a feature decoder makes the image. gamma and beta depend on the current
  image, so they are side information: float16, sent losslessly in `CompressedPair.side`
  (gamma then beta, little-endian, 4 * align_ch bytes) and counted as 16 bits per value in
  the training rate (`likelihoods[current]["side"]`).
- Element-wise alignment (EA, ablation): gamma and beta are per-element maps predicted from
  the reference features alone, so the decoder recomputes them and nothing is sent (the
  encoder cannot steer them with the current image, one reason it does worse).
- Spatial alignment (SA): after the j-th up-sampling stage (deconvolution + IGDN) of the
  current decoder, `PatchCrossAttention` (p=2 patch embedding, two Swin cross-attention
  blocks, the second with shifted windows, window `window` (4; 8 in the supplement),
  3 heads, relative position bias, transposed conv back) lets the current features attend
  to the reference decoder's j-th stage features. The reference is therefore decoded first
  and its intermediate features kept. Placements: "3" (stages 1-3 of the decoder, default),
  "1" (before the last deconvolution only), "6" (also after encoder stages 1-3, attending to
  the reference decoder features of the same resolution), "featcat" (plain concatenation +
  conv instead of attention), "none". SA and FeatCat modules add a residual and start as
  the identity (zero-initialised output conv), so a warm start from separate coding starts
  from the separate IR codec's behaviour.
- Geometry: `ratio=1` for same-size pairs; `ratio=2` when the reference (visible) has twice
  the resolution of the current modality (FLIR-style): as in the supplement, the first
  convolution and last deconvolution of the current codec have stride 1 (8x latent), the
  reference feature encoder has stride 2, so the reference decoder's stage-j features have
  the current decoder's stage-j size. Reference features are cropped/replicate-padded to the
  current size when padding makes them differ by a few pixels. Through the `.mmc` Codec
  (`size_ratio`, `padding_multiple`): the visible image must be 2x the infrared size per
  side, or one pixel more or less (odd visible sizes, downsampled by floor or ceil); the
  visible image is padded to a multiple of 64, the infrared to a multiple of 32 (8x latent,
  4x hyper-latent). The padded visible image is then exactly twice the padded infrared
  image, or larger by 64 pixels on a side when visible = 2 x infrared + 1 and the infrared
  size is a multiple of 32; `fit_to` crops the reference features at the bottom/right then,
  so they stay aligned with the infrared pixels (both images start at the top-left).

Entropy models: the paper codes both modalities with Minnen et al. 2018 (hyperprior +
serial autoregressive context). `context` sets the current modality's latent codec and
`reference_context` the reference codec's (mmcodec.latent_codecs): "hyperprior" (no
spatial context, the default), "checkerboard" (He et al. 2021: two parallel passes, the
fast context) or "autoregressive" (Minnen 2018, for fidelity: serial, one step per latent
position, slow on a CPU). Paper fidelity is `context="autoregressive",
reference_context="autoregressive"`. The reference's context is separate and defaults to
"hyperprior" so that the reference stays exactly the separate baseline it is warm-started
from (and usually frozen with); to give it a context, train a separate baseline with the
same `context` first. The context codecs keep the hyperprior's parameter names and start
as the plain hyperprior (their context network's last layer is zero), so a separate
"hyperprior" checkpoint warm-starts every shared tensor of either codec.

Sizes: the CPU preset (N=64, M=96) matches the separate baseline; the paper uses N=192
(`PRESETS["paper"]`). Cost is dominated by the full-resolution alignment features
(align_ch channels at every pixel): with align_ch=64 a 640x480 pair needs about 6x the MACs
of separate coding; `align_ch=32` roughly halves that.

The paper's optional joint objective L_v + w|L_i - L_i*| (reference unfrozen, the current
modality's loss held near that of the frozen pretrained model) is a trainer option:
`"joint_objective": {"weight": 5.0}` (mmcodec.train.config, configs/ir-vi-lu2022-joint.json).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcodec.errors import BitstreamError
from mmcodec.latent_codecs import LATENT_CONTEXTS, build_latent_codec
from mmcodec.layers import PatchCrossAttention, analysis_transform, conv, deconv, synthesis_transform
from mmcodec.modalities import CHANNELS
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.single import GainUnits, SingleModalityCodec

# Constructor kwargs. "cpu" matches the separate baseline's widths; "cpu_fast" halves the
# full-resolution alignment features, which dominate the cost (about 2.3x faster training
# steps, side info 128 bytes); "paper" is N=192 as in Lu et al.
PRESETS = {
    "cpu": {"N": 64, "M": 96, "align_ch": 64, "sa_dim": 48},
    "cpu_fast": {"N": 64, "M": 96, "align_ch": 32, "sa_dim": 48},
    "paper": {"N": 192, "M": 192, "align_ch": 64, "sa_dim": 192},
}

# SA placement -> (encoder stages, decoder stages) that get a cross-modal module.
SA_PLACEMENTS = {"none": ((), ()), "1": ((), (3,)), "3": ((), (1, 2, 3)), "6": ((1, 2, 3), (1, 2, 3)),
                 "featcat": ((), (1, 2, 3))}
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


def reference_synthesis(codec: SingleModalityCodec, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run `codec.g_s` layer by layer; return the image and the outputs of up-sampling stages
    1-3 (after each deconvolution + IGDN). Same arithmetic as calling `codec.g_s(y)`."""
    feats = []
    for i, layer in enumerate(codec.g_s):
        y = layer(y)
        if i in (1, 3, 5):
            feats.append(y)
    return y, feats


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


class ConditionalCodec(nn.Module):
    """The current modality's codec, conditioned on the decoded reference.

    Attribute names follow `SingleModalityCodec` (g_a, g_s, gains, latent_codec) so that
    a separate-coding checkpoint of the same modality warm-starts every tensor whose shape
    did not change.
    """

    def __init__(self, in_ch: int, ref_ch: int, ref_N: int, N: int, M: int, num_rates: int, ca: str, sa: str,
                 align_ch: int, sa_dim: int, window: int, heads: int, ratio: int, context: str = "hyperprior") -> None:
        super().__init__()
        self.ca, self.sa, self.align_ch = ca, sa, align_ch
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
        self.latent_codec = build_latent_codec(context, M, N)

        enc_stages, dec_stages = SA_PLACEMENTS[sa]

        def cross() -> nn.Module:
            if sa == "featcat":
                return FeatureConcat(N, ref_N)
            return PatchCrossAttention(N, ref_N, dim=sa_dim, heads=heads, window=window, patch=2)

        self.encoder_cross = nn.ModuleDict({str(j): cross() for j in enc_stages})
        self.decoder_cross = nn.ModuleDict({str(j): cross() for j in dec_stages})

    # -- pieces shared by forward, compress and decompress ---------------------------------
    def reference_features(self, x_ref_hat: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor | None:
        """Alignment features of the decoded reference at the current image's size `hw`."""
        if self.ca == "none":
            return None
        return fit_to(self.feature_reference(x_ref_hat), hw)

    def align(self, f_ref: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return gamma * f_ref + beta

    def analysis(self, h: torch.Tensor, ref_feats: list[torch.Tensor]) -> torch.Tensor:
        for i, layer in enumerate(self.g_a):
            h = layer(h)
            stage = (i + 1) // 2
            if i in (1, 3, 5) and str(stage) in self.encoder_cross:
                # Encoder stage j has the resolution of reference decoder stage 4 - j.
                context = fit_to(ref_feats[3 - stage], h.shape[-2:])
                h = self.encoder_cross[str(stage)](h, context)
        return h

    def synthesis(self, y: torch.Tensor, ref_feats: list[torch.Tensor], aligned: torch.Tensor | None) -> torch.Tensor:
        for i, layer in enumerate(self.g_s):
            y = layer(y)
            stage = (i + 1) // 2
            if i in (1, 3, 5) and str(stage) in self.decoder_cross:
                y = self.decoder_cross[str(stage)](y, fit_to(ref_feats[stage - 1], y.shape[-2:]))
        if aligned is not None:
            y = self.feature_decoder(torch.cat([y, aligned], 1))
        return y

    def encoder_input(self, x: torch.Tensor, f_ref: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns (g_a input, aligned features, gamma||beta to transmit or None)."""
        if self.ca == "none":
            return x, None, None
        f_cur = self.feature_current(x)
        if self.ca == "ca":
            gamma, beta = self.alignment(f_ref, f_cur)
            gamma, beta = to_side_precision(gamma), to_side_precision(beta)
            side = torch.cat([gamma, beta], 1).flatten(1)             # (B, 2 * align_ch)
        else:
            gamma, beta = self.alignment(f_ref)
            side = None
        aligned = self.align(f_ref, gamma, beta)
        return torch.cat([f_cur, aligned], 1), aligned, side

    def decoder_aligned(self, f_ref: torch.Tensor | None, side: torch.Tensor | None) -> torch.Tensor | None:
        """The aligned features as the decoder rebuilds them."""
        if self.ca == "none":
            return None
        if self.ca == "ca":
            gamma, beta = side[:, :self.align_ch, None, None], side[:, self.align_ch:, None, None]
        else:
            gamma, beta = self.alignment(f_ref)
        return self.align(f_ref, gamma, beta)

    # -- the three operations -------------------------------------------------------------
    def forward(self, x: torch.Tensor, x_ref_hat: torch.Tensor, ref_feats: list[torch.Tensor],
                rate: torch.Tensor) -> dict:
        h, aligned, side = self.encoder_input(x, self.reference_features(x_ref_hat, x.shape[-2:]))
        y = self.gains.scale(self.analysis(h, ref_feats), rate)
        y_hat, likelihoods = self.latent_codec(y)
        x_hat = self.synthesis(self.gains.unscale(y_hat, rate), ref_feats, aligned)
        if side is not None:
            # Constant cost: 16 bits per transmitted value, so the RD loss and logs see it.
            likelihoods = {**likelihoods, "side": torch.full_like(side, 2.0 ** -SIDE_BITS).detach()}
        return {"x_hat": x_hat, "likelihoods": likelihoods}

    # -- encoder refinement (mmcodec.refine) ------------------------------------------------
    def encoder_latents(self, x: torch.Tensor, x_ref_hat: torch.Tensor, ref_feats: list[torch.Tensor],
                        rate: int) -> dict[str, torch.Tensor]:
        r = torch.tensor([rate], device=x.device)
        h, _, _ = self.encoder_input(x, self.reference_features(x_ref_hat, x.shape[-2:]))
        y = self.gains.scale(self.analysis(h, ref_feats), r)
        return {"y": y, "z": self.latent_codec.h_a(y)}

    def relaxed_forward(self, latents: dict[str, torch.Tensor], x: torch.Tensor, x_ref_tilde: torch.Tensor,
                        ref_feats: list[torch.Tensor], rate: int, quantise) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_tilde, estimated bits incl. side information) given a relaxed reference decode."""
        _, aligned, side = self.encoder_input(x, self.reference_features(x_ref_tilde, x.shape[-2:]))
        y_tilde, bits = self.latent_codec.relaxed(latents["y"], latents["z"], quantise)
        if side is not None:
            bits = bits + SIDE_BITS * side.numel()
        r = torch.tensor([rate], device=x.device)
        return self.synthesis(self.gains.unscale(y_tilde, r), ref_feats, aligned), bits

    @torch.no_grad()
    def compress(self, x: torch.Tensor, x_ref_hat: torch.Tensor, ref_feats: list[torch.Tensor],
                 rate: int, latents: dict[str, torch.Tensor] | None = None) -> tuple[list[bytes], torch.Tensor, bytes]:
        """`latents`: refined y and z (mmcodec.refine) to code instead of the encoder's."""
        r = torch.tensor([rate], device=x.device)
        f_ref = self.reference_features(x_ref_hat, x.shape[-2:])
        h, aligned, side = self.encoder_input(x, f_ref)
        if latents is None:
            y = self.gains.scale(self.analysis(h, ref_feats), r)
            strings, y_hat = self.latent_codec.compress(y)
        else:
            strings, y_hat = self.latent_codec.compress(latents["y"], latents["z"])
        side_bytes = b"" if side is None else side[0].cpu().numpy().astype(SIDE_DTYPE).tobytes()
        # Rebuild `aligned` exactly as the decoder will, from the transmitted values.
        aligned = self.decoder_aligned(f_ref, self.parse_side(side_bytes, x.device))
        x_hat = self.synthesis(self.gains.unscale(y_hat, r), ref_feats, aligned).clamp_(0, 1)
        return strings, x_hat, side_bytes

    @torch.no_grad()
    def decompress(self, strings: list[bytes], hw: tuple[int, int], x_ref_hat: torch.Tensor,
                   ref_feats: list[torch.Tensor], side: bytes, rate: int) -> torch.Tensor:
        side_values = self.parse_side(side, x_ref_hat.device)
        latent_hw = (hw[0] // self.downsampling, hw[1] // self.downsampling)
        y_hat = self.latent_codec.decompress(strings, latent_hw)
        r = torch.tensor([rate], device=y_hat.device)
        aligned = self.decoder_aligned(self.reference_features(x_ref_hat, hw), side_values)
        return self.synthesis(self.gains.unscale(y_hat, r), ref_feats, aligned).clamp_(0, 1)

    def parse_side(self, side: bytes, device: torch.device) -> torch.Tensor | None:
        expected = 2 * self.align_ch * SIDE_DTYPE.itemsize if self.ca == "ca" else 0
        if len(side) != expected:
            raise BitstreamError(f"side information is {len(side)} bytes, the model expects {expected}")
        if not expected:
            return None
        values = np.frombuffer(side, dtype=SIDE_DTYPE).astype(np.float32)
        if not np.isfinite(values).all():
            raise BitstreamError("corrupted side information (non-finite alignment coefficients)")
        return torch.from_numpy(values.copy())[None].to(device)


class Lu2022(PairModel):
    """Reference modality coded alone, the other conditioned on it in its transforms.

    Args:
        modalities: the pair, e.g. ["rgb", "ir"].
        reference: the modality coded first ("rgb"; "ir" for the other direction).
        N, M: transform and latent widths (64/96 CPU preset, 192 in the paper).
        num_rates: rate points (gain-unit vectors).
        ca: "ca" (channel-wise, side info), "ea" (element-wise, no side info) or "none".
        sa: "3", "1", "6", "featcat" or "none" (see module docstring).
        window, heads, sa_dim: window cross-attention parameters (M=4 in the paper's text).
        align_ch: channels of the alignment features (64 in the paper).
        ratio: reference resolution / current resolution (1, or 2 for visible at twice IR).
        reference_widths: [N, M] of the reference codec if it differs from the current one.
        context: spatial context of the current modality's entropy model: "hyperprior",
            "checkerboard" or "autoregressive" (see module docstring).
        reference_context: the same for the reference codec (a `SingleModalityCodec`,
            default "hyperprior" like the separate baseline it is warm-started from).
    """

    def __init__(self, modalities: tuple[str, ...] = ("rgb", "ir"), reference: str = "rgb", N: int = 64,
                 M: int = 96, num_rates: int = 4, ca: str = "ca", sa: str = "3", window: int = 4,
                 heads: int = 3, sa_dim: int = 48, align_ch: int = 64, ratio: int = 1,
                 reference_widths: list[int] | None = None, context: str = "hyperprior",
                 reference_context: str = "hyperprior") -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        if len(self.modalities) != 2 or reference not in self.modalities:
            raise ValueError(f"reference {reference!r} must be one of a pair, got {self.modalities}")
        if ca not in ("ca", "ea", "none"):
            raise ValueError(f"ca must be 'ca', 'ea' or 'none', not {ca!r}")
        if sa not in SA_PLACEMENTS:
            raise ValueError(f"sa must be one of {sorted(SA_PLACEMENTS)}, not {sa!r}")
        if ratio not in (1, 2):
            raise ValueError("ratio must be 1 (same size) or 2 (reference at twice the resolution)")
        if ratio == 2 and CHANNELS[reference] != 3:
            raise ValueError("ratio 2 needs the visible (higher-resolution) image as the reference")
        for name, value in (("context", context), ("reference_context", reference_context)):
            if value not in LATENT_CONTEXTS:
                raise ValueError(f"{name} must be one of {', '.join(LATENT_CONTEXTS)}, not {value!r}")
        self.reference = reference
        self.current = next(m for m in self.modalities if m != reference)
        self.channels = {m: CHANNELS[m] for m in self.modalities}
        self.num_rates, self.ratio = num_rates, ratio
        ref_N, ref_M = reference_widths or (N, M)
        ref_codec = SingleModalityCodec(self.channels[reference], ref_N, ref_M, num_rates=num_rates,
                                        context=reference_context)
        cur_codec = ConditionalCodec(self.channels[self.current], self.channels[reference], ref_N, N, M, num_rates,
                                     ca, sa, align_ch, sa_dim, window, heads, ratio, context=context)
        self.codecs = nn.ModuleDict({reference: ref_codec, self.current: cur_codec})

    def _reference_decode(self, y_hat: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        ref = self.codecs[self.reference]
        return reference_synthesis(ref, ref.gains.unscale(y_hat, rate))

    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        R, C = self.reference, self.current
        ref = self.codecs[R]
        y = ref.gains.scale(ref.g_a(x[R]), rate)
        y_hat, ref_likelihoods = ref.latent_codec(y)
        x_ref_hat, ref_feats = self._reference_decode(y_hat, rate)
        # The current modality only ever sees what the decoder has: the clamped reconstruction.
        cur = self.codecs[C](x[C], x_ref_hat.clamp(0, 1), ref_feats, rate)
        return {"x_hat": {R: x_ref_hat, C: cur["x_hat"]},
                "likelihoods": {R: ref_likelihoods, C: cur["likelihoods"]}}

    # -- encoder refinement (mmcodec.refine): the reference's latents are refined with the
    # current modality's cost in view, since the current decoder reads the decoded reference.
    def encoder_latents(self, x: dict[str, torch.Tensor], rate: int) -> dict[str, dict[str, torch.Tensor]]:
        R, C = self.reference, self.current
        ref = self.codecs[R]
        latents_ref = ref.encoder_latents(x[R], rate)
        _, y_hat = ref.latent_codec.compress(latents_ref["y"])
        x_ref_hat, ref_feats = self._reference_decode(y_hat, torch.tensor([rate], device=y_hat.device))
        return {R: latents_ref, C: self.codecs[C].encoder_latents(x[C], x_ref_hat.clamp(0, 1), ref_feats, rate)}

    def relaxed_forward(self, x: dict[str, torch.Tensor], latents: dict[str, dict[str, torch.Tensor]], rate: int,
                        quantise) -> dict:
        R, C = self.reference, self.current
        ref = self.codecs[R]
        y_tilde, bits_ref = ref.latent_codec.relaxed(latents[R]["y"], latents[R]["z"], quantise)
        x_ref_tilde, ref_feats = self._reference_decode(y_tilde, torch.tensor([rate], device=y_tilde.device))
        x_cur_tilde, bits_cur = self.codecs[C].relaxed_forward(latents[C], x[C], x_ref_tilde.clamp(0, 1), ref_feats,
                                                               rate, quantise)
        return {"x_hat": {R: x_ref_tilde, C: x_cur_tilde}, "bits": {R: bits_ref, C: bits_cur}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int,
                 latents: dict[str, dict[str, torch.Tensor]] | None = None) -> CompressedPair:
        """`latents`: refined latents per modality (mmcodec.refine) to code instead of the encoders'."""
        R, C = self.reference, self.current
        ref = self.codecs[R]
        r = torch.tensor([rate], device=x[R].device)
        if latents is None:
            ref_strings, y_hat = ref.latent_codec.compress(ref.gains.scale(ref.g_a(x[R]), r))
        else:
            ref_strings, y_hat = ref.latent_codec.compress(latents[R]["y"], latents[R]["z"])
        x_ref_hat, ref_feats = self._reference_decode(y_hat, r)
        x_ref_hat = x_ref_hat.clamp_(0, 1)
        cur_strings, x_cur_hat, side = self.codecs[C].compress(x[C], x_ref_hat, ref_feats, rate,
                                                               None if latents is None else latents[C])
        return CompressedPair({R: ref_strings, C: cur_strings}, {R: x_ref_hat, C: x_cur_hat}, side)

    @torch.no_grad()
    def decompress(self, streams: dict[str, list[bytes]], side: bytes, sizes: dict[str, tuple[int, int]],
                   rate: int, only: str | None = None) -> dict[str, torch.Tensor]:
        R, C = self.reference, self.current
        ref = self.codecs[R]
        # Reference first: the current modality needs its reconstruction and decoder features.
        latent_hw = (sizes[R][0] // ref.downsampling, sizes[R][1] // ref.downsampling)
        y_hat = ref.latent_codec.decompress(streams[R], latent_hw)
        x_ref_hat, ref_feats = self._reference_decode(y_hat, torch.tensor([rate], device=y_hat.device))
        x_ref_hat = x_ref_hat.clamp_(0, 1)
        if only == R:
            return {R: x_ref_hat}
        x_cur_hat = self.codecs[C].decompress(streams[C], sizes[C], x_ref_hat, ref_feats, side, rate)
        return {C: x_cur_hat} if only == C else {R: x_ref_hat, C: x_cur_hat}

    def requires(self, only: str) -> set[str]:
        return {self.reference} if only == self.reference else set(self.modalities)

    def size_ratio(self, modality: str) -> int:
        return self.ratio if modality == self.reference else 1

    def padding_multiple(self, modality: str) -> int:
        # The current codec downsamples `ratio` times less (stride-1 first conv at ratio 2).
        return self.multiple if modality == self.reference else self.multiple // self.ratio

    def stage_parameters(self, stage: str) -> list[torch.nn.Parameter]:
        """"current": only the conditional codec trains (the reference stays as loaded)."""
        params = super().stage_parameters(stage)
        if stage == "current":
            keep = {id(p) for p in self.codecs[self.current].parameters()}
            params = [p for p in params if id(p) in keep]
        return params
