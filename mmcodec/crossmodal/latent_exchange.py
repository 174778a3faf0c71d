"""Exchange between the two latents before quantisation (CCEM's encoder-side cross-attention).

Each modality's analysis output gets a residual computed from both latents by agent
attention (linear in the number of positions, so cheap at 1/16 resolution), or by the plain
cross-attention the paper names (`attention="full"`, quadratic; an ablation arm). It runs at the
encoder only, on unquantised latents: the decoder never repeats it, so it costs no bits and
adds no decoding dependency; it lets each encoder put into its latent what the other
modality's latent does not already carry.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.layers import FusionBlock


class LatentExchange(nn.ModuleDict):
    """One cross-attention fusion block per modality: queries from its latent, keys and
    values from the other's. A ModuleDict keyed by modality (parameter names `<mod>.*`)."""

    def __init__(self, channels: dict[str, int], dim: int, attention: str = "agent") -> None:
        if len(channels) != 2:
            raise ValueError(f"latent exchange needs two modalities, got {sorted(channels)}")
        (a, ch_a), (b, ch_b) = channels.items()
        super().__init__({a: FusionBlock(ch_a, ch_b, ch_a, dim, attention=attention),
                          b: FusionBlock(ch_b, ch_a, ch_b, dim, attention=attention)})
        self.other = {a: b, b: a}

    def forward(self, latents: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: t + self[m](t, latents[self.other[m]]) for m, t in latents.items()}
