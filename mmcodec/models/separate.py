"""Separate coding: one single-modality codec per modality, two independent streams.

The reference every joint model must beat. `context` ("hyperprior", "checkerboard",
"autoregressive") is the spatial context of every modality's latent codec (see
mmcodec.models.single).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from mmcodec.modalities import CHANNELS
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.single import SingleModalityCodec
from mmcodec.tiling import Tiling, receptive_reach


class SeparateCoding(PairModel):
    supports_tiling = True  # plain convolution transforms: see mmcodec.tiling
    # No modality depends on another: training may draw each modality's crops from its own
    # images (mmcodec.data.crops, `single_images`).
    independent_modalities = True

    def __init__(self, modalities: tuple[str, ...] = ("rgb", "ir"), N: int = 64, M: int = 96,
                 num_rates: int = 5, widths: dict[str, list[int]] | None = None,
                 context: str = "hyperprior") -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.channels = {m: CHANNELS[m] for m in self.modalities}
        self.num_rates = num_rates
        widths = widths or {}   # per modality [N, M] or [N, M, transform N] (mmcodec.train.widen)

        def codec(m: str) -> SingleModalityCodec:
            N_m, M_m, *transform_N = widths.get(m, (N, M))
            return SingleModalityCodec(self.channels[m], N_m, M_m, num_rates=num_rates, context=context,
                                       transform_N=transform_N[0] if transform_N else None)
        self.codecs = nn.ModuleDict({m: codec(m) for m in self.modalities})

    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        outs = {m: self.codecs[m](x[m], rate) for m in self.modalities}
        return {"x_hat": {m: o["x_hat"] for m, o in outs.items()},
                "likelihoods": {m: o["likelihoods"] for m, o in outs.items()}}

    def synthesis_halo(self) -> int:
        """Latents of context a synthesis tile needs for its core to equal the whole image's."""
        return max(receptive_reach(c.g_s)[1] for c in self.codecs.values())

    # -- encoder refinement (mmcodec.refine) ----------------------------------------------
    def encoder_latents(self, x: dict[str, torch.Tensor], rate: int, tiling: Tiling | None = None
                        ) -> dict[str, dict[str, torch.Tensor]]:
        return {m: self.codecs[m].encoder_latents(x[m], rate, tiling=tiling) for m in self.modalities}

    def relaxed_forward(self, x: dict[str, torch.Tensor], latents: dict[str, dict[str, torch.Tensor]], rate: int,
                        quantise) -> dict:
        """{"x_hat": {mod: x_tilde}, "bits": {mod: estimated bits}} from free latents."""
        outs = {m: self.codecs[m].relaxed_forward(latents[m], rate, quantise) for m in self.modalities}
        return {"x_hat": {m: o["x_hat"] for m, o in outs.items()}, "bits": {m: o["bits"] for m, o in outs.items()}}

    @torch.no_grad()
    def compress(self, x: dict[str, torch.Tensor], rate: int, tiling: Tiling | None = None,
                 latents: dict[str, dict[str, torch.Tensor]] | None = None) -> CompressedPair:
        """`latents`: refined latents per modality (mmcodec.refine) to code instead of g_a(x)'s."""
        coded = {m: self.codecs[m].compress(x[m], rate, tiling=tiling, latents=None if latents is None else latents[m])
                 for m in self.modalities}
        return CompressedPair({m: c.strings for m, c in coded.items()}, {m: c.x_hat for m, c in coded.items()})

    @torch.no_grad()
    def decompress(self, streams, side, sizes, rate, only=None, tiling: Tiling | None = None):
        wanted = self.modalities if only is None else (only,)
        return {m: self.codecs[m].decompress(streams[m], sizes[m], rate, tiling=tiling) for m in wanted}

    def requires(self, only: str) -> set[str]:
        return {only}

    # -- grey visible images ----------------------------------------------------------------
    def grey_visible_view(self) -> "SeparateCoding | None":
        """This model with its visible image coded by its infrared codec, for grey visible
        images (three equal channels): that codec was trained on single-channel images and
        codes one plane instead of three identical ones (about 38 % fewer bits on grey
        versions of the MSRS validation images; BENCHMARKS.md). None if the model has no
        single-channel infrared codec beside a colour one.

        The view shares every parameter and buffer with this model (nothing is copied); its
        visible codec is a distinct object over the infrared codec's modules, so coded latents
        stay attributable to their modality (`latent_modality`)."""
        if self.channels.get("rgb") != 3 or self.channels.get("ir") != 1:
            return None
        view = copy.copy(self)
        view._modules = dict(self._modules)   # a new module table: re-assigning codecs leaves self alone
        view.codecs = nn.ModuleDict({m: copy.copy(self.codecs["ir"]) if m == "rgb" else c
                                     for m, c in self.codecs.items()})
        view.channels = {**self.channels, "rgb": 1}
        return view
