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
  the reference decoder features of the same resolution), "spf" / "spf6" (the RGB-D thesis's
  structure-prior fusion instead of attention, decoder stages / encoder and decoder stages:
  `rgb-d/fusion`), "featcat" (plain concatenation +
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
(`preset="paper"`, which also selects the autoregressive context and window 8). Cost is dominated by the full-resolution alignment features
(align_ch channels at every pixel): with align_ch=64 a 640x480 pair needs about 6x the MACs
of separate coding; `align_ch=32` roughly halves that.

The paper's optional joint objective L_v + w|L_i - L_i*| (reference unfrozen, the current
modality's loss held near that of the frozen pretrained model) is a trainer option:
`"joint_objective": {"weight": 5.0}` (mmcodec.train.config, configs/ir-vi-lu2022-joint.json).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.crossmodal.entropy_context import CrossModalHyperprior
from mmcodec.crossmodal.transforms import SA_PLACEMENTS, ConditionalCodec, DecoderFeatures, ReferenceCondition
from mmcodec.latent_codecs import LATENT_CONTEXTS
from mmcodec.modalities import CHANNELS
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.single import SingleModalityCodec

# Size and entropy-model presets (`preset` kwarg; any explicit kwarg overrides its value).
# "cpu" (the default) matches the separate baseline's widths; "cpu_fast" halves the
# full-resolution alignment features, which dominate the cost (about 2.3x faster training
# steps, side info 128 bytes); "paper" is Lu et al.'s setting: N = M = 192, Minnen 2018
# autoregressive context for both modalities, CA + 3 SA with patch 2, window 8, 3 heads
# (supplement), alignment width 64.
PRESETS: dict[str, dict] = {
    "cpu": {"N": 64, "M": 96, "align_ch": 64, "sa_dim": 48, "window": 4, "heads": 3,
            "context": "hyperprior", "reference_context": "hyperprior"},
    "cpu_fast": {"N": 64, "M": 96, "align_ch": 32, "sa_dim": 48, "window": 4, "heads": 3,
                 "context": "hyperprior", "reference_context": "hyperprior"},
    "paper": {"N": 192, "M": 192, "align_ch": 64, "sa_dim": 192, "window": 8, "heads": 3,
              "context": "autoregressive", "reference_context": "autoregressive"},
}


# The current modality's entropy model: the paper's own ("none"), or also conditioned on the
# reference's decoded latent ("latent", mmcodec.crossmodal.entropy_context).
ENTROPY_CONTEXTS = ("none", "latent")


class Lu2022(PairModel):
    """Reference modality coded alone, the other conditioned on it in its transforms.

    Args:
        modalities: the pair, e.g. ["rgb", "ir"].
        reference: the modality coded first ("rgb"; "ir" for the other direction).
        N, M: transform and latent widths (64/96 CPU preset, 192 in the paper).
        num_rates: rate points (gain-unit vectors).
        ca: "ca" (channel-wise, side info), "ea" (element-wise, no side info) or "none".
        sa: "3", "1", "6", "featcat", "spf", "spf6" or "none" (see module docstring).
        window, heads, sa_dim: window cross-attention parameters (M=4 in the paper's text).
        align_ch: channels of the alignment features (64 in the paper).
        ratio: reference resolution / current resolution (1, or 2 for visible at twice IR;
            the reference must then be the visible image: the supplement's reverse direction
            with an infrared reference at ratio 2 is refused with a ValueError).
            `mmcodec train` refuses it in one line (exit 2) before any work; 2:1 data: `downsample`.
        reference_widths: [N, M] of the reference codec if it differs from the current one.
        context: spatial context of the current modality's entropy model: "hyperprior",
            "checkerboard" or "autoregressive" (see module docstring).
        reference_context: the same for the reference codec (a `SingleModalityCodec`,
            default "hyperprior" like the separate baseline it is warm-started from).
        preset: "cpu" (default), "cpu_fast" or "paper" (PRESETS); explicit sizes and
            contexts override the preset's.
        entropy_context: "none" (the paper) or "latent": the current modality's hyperprior
            also sees the reference's decoded latent (CCEM's placement, in the entropy model;
            mmcodec.crossmodal.entropy_context.CrossModalHyperprior). Not in the paper.
    """

    def __init__(self, modalities: tuple[str, ...] = ("rgb", "ir"), reference: str = "rgb", N: int | None = None,
                 M: int | None = None, num_rates: int = 4, ca: str = "ca", sa: str = "3", window: int | None = None,
                 heads: int | None = None, sa_dim: int | None = None, align_ch: int | None = None, ratio: int = 1,
                 reference_widths: list[int] | None = None, context: str | None = None,
                 reference_context: str | None = None, preset: str = "cpu", entropy_context: str = "none") -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        given = {"N": N, "M": M, "window": window, "heads": heads, "sa_dim": sa_dim, "align_ch": align_ch,
                 "context": context, "reference_context": reference_context}
        cfg = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
        N, M, window, heads, sa_dim, align_ch = (cfg[k] for k in ("N", "M", "window", "heads", "sa_dim", "align_ch"))
        context, reference_context = cfg["context"], cfg["reference_context"]
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
        if entropy_context not in ENTROPY_CONTEXTS:
            raise ValueError(f"entropy_context must be one of {', '.join(ENTROPY_CONTEXTS)}, not {entropy_context!r}")
        if entropy_context == "latent" and context != "hyperprior":
            raise ValueError("entropy_context='latent' extends the plain hyperprior (context='hyperprior')")
        self.reference = reference
        self.current = next(m for m in self.modalities if m != reference)
        self.channels = {m: CHANNELS[m] for m in self.modalities}
        self.num_rates, self.ratio = num_rates, ratio
        self.entropy_context = entropy_context
        ref_N, ref_M = reference_widths or (N, M)
        ref_codec = SingleModalityCodec(self.channels[reference], ref_N, ref_M, num_rates=num_rates,
                                        context=reference_context)
        cur_codec = ConditionalCodec(self.channels[self.current], self.channels[reference], ref_N, N, M, num_rates,
                                     ca, sa, align_ch, sa_dim, window, heads, ratio, context=context,
                                     latent_codec=CrossModalHyperprior(M, N, ref_M) if entropy_context == "latent"
                                     else None)
        self.codecs = nn.ModuleDict({reference: ref_codec, self.current: cur_codec})

    # -- the reference first: the current modality reads its reconstruction and decoder features
    def _condition(self, x_ref_hat: torch.Tensor, taps: DecoderFeatures, hw: tuple[int, int],
                   ref_latent: torch.Tensor | None = None) -> ReferenceCondition:
        return self.codecs[self.current].condition(x_ref_hat, taps.features, hw, ref_latent)

    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        R, C = self.reference, self.current
        taps = DecoderFeatures()
        ref = self.codecs[R](x[R], rate, taps)
        # The current modality only ever sees what the decoder has: the clamped reconstruction.
        cur = self.codecs[C](x[C], rate, self._condition(ref["x_hat"].clamp(0, 1), taps, x[C].shape[-2:],
                                                         ref["latent"]))
        return {"x_hat": {R: ref["x_hat"], C: cur["x_hat"]},
                "likelihoods": {R: ref["likelihoods"], C: cur["likelihoods"]}}

    # -- encoder refinement (mmcodec.refine): the reference's latents are refined with the
    # current modality's cost in view, since the current decoder reads the decoded reference.
    def encoder_latents(self, x: dict[str, torch.Tensor], rate: int) -> dict[str, dict[str, torch.Tensor]]:
        R, C = self.reference, self.current
        taps = DecoderFeatures()
        latents_ref = self.codecs[R].encoder_latents(x[R], rate)
        ref = self.codecs[R].compress(None, rate, taps, latents={"y": latents_ref["y"], "z": None})
        cond = self._condition(ref.x_hat, taps, x[C].shape[-2:], ref.latent)
        return {R: latents_ref, C: self.codecs[C].encoder_latents(x[C], rate, cond)}

    def relaxed_forward(self, x: dict[str, torch.Tensor], latents: dict[str, dict[str, torch.Tensor]], rate: int,
                        quantise) -> dict:
        R, C = self.reference, self.current
        taps = DecoderFeatures()
        ref = self.codecs[R].relaxed_forward(latents[R], rate, quantise, cond=taps)
        cond = self._condition(ref["x_hat"].clamp(0, 1), taps, x[C].shape[-2:], ref["latent"])
        cur = self.codecs[C].relaxed_forward(latents[C], rate, quantise, x=x[C], cond=cond)
        return {"x_hat": {R: ref["x_hat"], C: cur["x_hat"]}, "bits": {R: ref["bits"], C: cur["bits"]}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int,
                 latents: dict[str, dict[str, torch.Tensor]] | None = None) -> CompressedPair:
        """`latents`: refined latents per modality (mmcodec.refine) to code instead of the encoders'."""
        R, C = self.reference, self.current
        taps = DecoderFeatures()
        ref = self.codecs[R].compress(x[R], rate, taps, latents=None if latents is None else latents[R])
        cond = self._condition(ref.x_hat, taps, x[C].shape[-2:], ref.latent)
        cur = self.codecs[C].compress(x[C], rate, cond, latents=None if latents is None else latents[C])
        return CompressedPair({R: ref.strings, C: cur.strings}, {R: ref.x_hat, C: cur.x_hat}, cur.side)

    @torch.no_grad()
    def decompress(self, streams: dict[str, list[bytes]], side: bytes, sizes: dict[str, tuple[int, int]],
                   rate: int, only: str | None = None) -> dict[str, torch.Tensor]:
        R, C = self.reference, self.current
        taps = DecoderFeatures()
        ref_latent = self.codecs[R].decode_latent(streams[R], sizes[R], rate, taps)
        x_ref_hat = self.codecs[R].reconstruct(ref_latent, taps)
        if only == R:
            return {R: x_ref_hat}
        cond = self._condition(x_ref_hat, taps, sizes[C], ref_latent)
        x_cur_hat = self.codecs[C].decompress(streams[C], sizes[C], rate, cond, side=side)
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
