"""One modality's coding chain, written once for every model:

    x -> encoder_input -> analysis -> gain(rate) -> latent codec -> inverse gain -> synthesis -> x_hat

A model codes each modality with a `ModalityPipeline`: the separate baseline's
`SingleModalityCodec`, Lu et al.'s conditional codec, LIC-TCM's codec, and CCEM's per-modality
paths all run the operations below and differ only in their hooks. The cross-modal pieces
(mmcodec.crossmodal) enter through those hooks and a per-image conditioning object `cond`
that the model builds from the other modality (whatever the hooks of that codec read):

- `encoder_input(x, cond)`: fusion at the encoder input (RGB-D 4-channel input, Lu's aligned
  features); may record side information in `cond`.
- `analysis(h, cond, tiling)` / `synthesis(y_hat, cond, tiling)`: conditioning inside the
  transforms (Lu's spatial alignment, RGB-D structure-prior fusion and prompts).
- `entropy_context(cond)`: context for the latent codec (CCEM's LCFB).
- `side_*` / `receive_side`: side information sent besides the latent (Lu's gamma, beta).
- `analysed=`: a latent the model computed jointly for both modalities (CCEM's exchange
  before quantisation) instead of this codec's analysis.

Every operation applies the gains, the latent codec and the synthesis in the same order, so
`compress` reproduces `decompress` bit for bit, and encoder refinement (mmcodec.refine) and
training share one path.

`observe_latents` shows a caller (mmcodec.codec, for the stream's latent CRCs) every latent
that `compress` codes and `decode_latent` decodes, whatever model drives the pipelines.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from mmcodec.tiling import Tiling, apply_analysis, apply_synthesis

Quantise = Callable[[torch.Tensor], torch.Tensor]
# A transform-stage hook: (stage index, features) -> features (cross-modal fusion after a stage).
FeatureHook = Callable[[int, torch.Tensor], torch.Tensor]


# Receives (pipeline, y_hat, side): the latent as the latent codec returns it, before the
# inverse gain, and the side information that pipeline sends (compress) or reads (decode).
LatentObserver = Callable[["ModalityPipeline", torch.Tensor, bytes], None]
_latent_observer: contextvars.ContextVar[LatentObserver | None] = contextvars.ContextVar("latent_observer",
                                                                                       default=None)


@contextlib.contextmanager
def observe_latents(observer: LatentObserver) -> Iterator[None]:
    """While active, every `ModalityPipeline.compress` and `decode_latent` calls
    `observer(pipeline, y_hat, side)` with the latent its latent codec coded or decoded (ŷ
    before the inverse gain: symbols + means, what the entropy decoder reproduces) and the
    side information it sends or reads (b"" for most codecs), before any synthesis runs on
    the latent. An exception the observer raises ends the coding call."""
    token = _latent_observer.set(observer)
    try:
        yield
    finally:
        _latent_observer.reset(token)


def _observe(pipeline: "ModalityPipeline", y_hat: torch.Tensor, side: bytes) -> None:
    observer = _latent_observer.get()
    if observer is not None:
        observer(pipeline, y_hat, bytes(side))


def stage_fusion(fusion: nn.ModuleDict, features: list[torch.Tensor]) -> FeatureHook:
    """A stage hook that fuses `features[i]` into stage i's output where `fusion` has a module
    for stage i (the RGB-D structure-prior fusion, encoder or decoder side)."""

    def fuse(i: int, f: torch.Tensor) -> torch.Tensor:
        return fusion[str(i)](f, features[i]) if str(i) in fusion else f
    return fuse


class GainUnits(nn.Module):
    """Per-rate, per-channel gains applied to the latent and undone after quantisation
    (Cui et al., "Asymmetric Gained Deep Image Compression", CVPR 2021): one network serves
    every rate point."""

    def __init__(self, num_rates: int, channels: int) -> None:
        super().__init__()
        # Start one level apart = quantisation step x1/sqrt(2), matching lambda doubling per level.
        init = torch.tensor([2.0 ** ((r - (num_rates - 1)) / 2) for r in range(num_rates)])
        self.gain = nn.Parameter(init[:, None].repeat(1, channels))
        self.inverse_gain = nn.Parameter((1.0 / init)[:, None].repeat(1, channels))

    def scale(self, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return y * self.gain[rate][:, :, None, None]

    def unscale(self, y_hat: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return y_hat * self.inverse_gain[rate][:, :, None, None]


def rate_tensor(rate: int | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The rate index as the gains take it: a (B,) LongTensor (coding passes one int)."""
    return rate if isinstance(rate, torch.Tensor) else torch.tensor([rate], device=device)


@dataclass
class CodedModality:
    """What `ModalityPipeline.compress` produces for one modality."""

    strings: list[bytes]          # the latent codec's byte strings
    x_hat: torch.Tensor           # the reconstruction the decoder will produce
    latent: torch.Tensor          # the decoded latent without gain (another modality's context)
    side: bytes = b""             # side information to transmit
    y_hat: torch.Tensor | None = None   # the latent codec's output (before the inverse gain)


class ModalityPipeline:
    """The operations of one modality's codec. Subclasses (nn.Modules) own `gains` and
    `latent_codec` (and usually `g_a`, `g_s`) and override the hooks they need."""

    gains: GainUnits
    latent_codec: nn.Module
    downsampling: int = 16        # latent size = image size / downsampling

    # -- hooks ------------------------------------------------------------------------------
    def encoder_input(self, x: torch.Tensor, cond: Any) -> torch.Tensor:
        return x

    def analysis(self, h: torch.Tensor, cond: Any, tiling: Tiling | None = None) -> torch.Tensor:
        return apply_analysis(self.g_a, h, tiling)

    def synthesis(self, y_hat: torch.Tensor, cond: Any, tiling: Tiling | None = None) -> torch.Tensor:
        return apply_synthesis(self.g_s, y_hat, tiling)

    def entropy_context(self, cond: Any) -> torch.Tensor | None:
        return None

    def side_likelihoods(self, cond: Any) -> dict[str, torch.Tensor]:
        """Training-rate terms of the side information `encoder_input` recorded in `cond`."""
        return {}

    def side_bits(self, cond: Any) -> float | None:
        return None

    def side_bytes(self, cond: Any) -> bytes:
        return b""

    def receive_side(self, cond: Any, side: bytes) -> None:
        """Put the transmitted side information into `cond` as the decoder sees it."""
        if side:
            raise ValueError(f"{type(self).__name__} takes no side information, got {len(side)} bytes")

    # -- the chain ----------------------------------------------------------------------------
    def _context(self, cond: Any) -> dict[str, torch.Tensor]:
        context = self.entropy_context(cond)
        return {} if context is None else {"context": context}

    def _latent(self, x: torch.Tensor | None, rate: torch.Tensor, cond: Any, tiling: Tiling | None,
                analysed: torch.Tensor | None) -> torch.Tensor:
        if analysed is None:
            analysed = self.analysis(self.encoder_input(x, cond), cond, tiling)
        return self.gains.scale(analysed, rate)

    def forward(self, x: torch.Tensor | None, rate: torch.Tensor, cond: Any = None,
                analysed: torch.Tensor | None = None) -> dict[str, Any]:
        """Training: {"x_hat", "likelihoods" (side information included), "latent"}."""
        y_hat, likelihoods = self.latent_codec(self._latent(x, rate, cond, None, analysed), **self._context(cond))
        latent = self.gains.unscale(y_hat, rate)
        likelihoods = {**likelihoods, **self.side_likelihoods(cond)}
        return {"x_hat": self.synthesis(latent, cond), "likelihoods": likelihoods, "latent": latent}

    def encoder_latents(self, x: torch.Tensor | None, rate: int, cond: Any = None, tiling: Tiling | None = None,
                        analysed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """What the stream carries, as free variables for encoder refinement: the gained latent
        y and the hyper-latent z = h_a(y)."""
        device = (x if analysed is None else analysed).device
        y = self._latent(x, rate_tensor(rate, device), cond, tiling, analysed)
        return {"y": y, "z": self.latent_codec.h_a(y)}

    def relaxed_forward(self, latents: dict[str, torch.Tensor], rate: int, quantise: Quantise,
                        x: torch.Tensor | None = None, cond: Any = None) -> dict[str, torch.Tensor]:
        """Differentiable stand-in for `compress` on free latents (mmcodec.refine), `quantise`
        in place of rounding: {"x_hat", "bits" (estimated, side information included), "latent"}.
        `x` is needed only where the encoder input makes side information (Lu's alignment)."""
        if not hasattr(self.latent_codec, "relaxed"):
            raise NotImplementedError(f"encoder refinement is not available for {type(self.latent_codec).__name__}")
        if x is not None:
            self.encoder_input(x, cond)
        y_tilde, bits = self.latent_codec.relaxed(latents["y"], latents["z"], quantise, **self._context(cond))
        side_bits = self.side_bits(cond)
        if side_bits is not None:
            bits = bits + side_bits
        latent = self.gains.unscale(y_tilde, rate_tensor(rate, y_tilde.device))
        return {"x_hat": self.synthesis(latent, cond), "bits": bits, "latent": latent}

    @torch.no_grad()
    def compress(self, x: torch.Tensor | None, rate: int, cond: Any = None, tiling: Tiling | None = None,
                 latents: dict[str, torch.Tensor | None] | None = None,
                 analysed: torch.Tensor | None = None) -> CodedModality:
        """Code one image (batch 1). `latents` (refined y and z, mmcodec.refine) are coded
        instead of the analysis output; `analysed` is a jointly computed latent (CCEM)."""
        device = (x if analysed is None else analysed).device if latents is None else latents["y"].device
        r = rate_tensor(rate, device)
        if latents is None:
            strings, y_hat = self.latent_codec.compress(self._latent(x, r, cond, tiling, analysed),
                                                        **self._context(cond))
        else:
            if x is not None:
                self.encoder_input(x, cond)     # the side information of the refined encoding
            strings, y_hat = self.latent_codec.compress(latents["y"], z=latents["z"], **self._context(cond))
        side = self.side_bytes(cond)
        _observe(self, y_hat, side)
        # The reconstruction exactly as the decoder will make it: from the transmitted side values.
        self.receive_side(cond, side)
        latent = self.gains.unscale(y_hat, r)
        return CodedModality(strings, self.reconstruct(latent, cond, tiling), latent, side, y_hat)

    @torch.no_grad()
    def decode_latent(self, strings: list[bytes], hw: tuple[int, int], rate: int, cond: Any = None,
                      side: bytes = b"") -> torch.Tensor:
        """The decoded latent without gain, for an image of padded size `hw`."""
        self.receive_side(cond, side)
        latent_hw = (hw[0] // self.downsampling, hw[1] // self.downsampling)
        y_hat = self.latent_codec.decompress(strings, latent_hw, **self._context(cond))
        _observe(self, y_hat, side)
        return self.gains.unscale(y_hat, rate_tensor(rate, y_hat.device))

    @torch.no_grad()
    def reconstruct(self, latent: torch.Tensor, cond: Any = None, tiling: Tiling | None = None) -> torch.Tensor:
        return self.synthesis(latent, cond, tiling).clamp_(0, 1)

    @torch.no_grad()
    def decompress(self, strings: list[bytes], hw: tuple[int, int], rate: int, cond: Any = None,
                   tiling: Tiling | None = None, side: bytes = b"") -> torch.Tensor:
        return self.reconstruct(self.decode_latent(strings, hw, rate, cond, side), cond, tiling)
