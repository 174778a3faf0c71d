"""Cross-modal context in the entropy model (CCEM, Wang et al.): the low-frequency context
fusion block (LCFB).

A channel-slice codec (mmcodec.latent_codecs.ChannelSliceCodec) of the dependent modality
receives the reference modality's *decoded* latent (same spatial size) as `context`: a Lite
Transformer extracts its low-frequency features once per image, and for every slice an agent
cross-attention block (queries from the slice's support features, keys/values from the
context) adds a residual to the support features. The residual starts at zero, and
`context=None` skips it (CCEM stage 1, or decoding without the other modality). The decoder
must receive exactly the context the encoder used, which makes decoding bit-exact.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.latent_codecs import ChannelSliceCodec
from mmcodec.layers import FusionBlock, LiteTransformer


class CrossModalSliceCodec(ChannelSliceCodec):
    """`ChannelSliceCodec` whose slice parameters also see another modality's latent (LCFB)."""

    def __init__(self, M: int, N: int, context_ch: int, num_slices: int = 5, support_ch: int = 128,
                 lceb: bool = True, lceb_dim: int = 64, context_dim: int = 64, heads: int = 4, agents: int = 7,
                 lrp: bool = True) -> None:
        super().__init__(M, N, num_slices, support_ch, lceb=lceb, lceb_dim=lceb_dim, heads=heads, lrp=lrp)
        self.context_ch = context_ch
        self.context_extractor = LiteTransformer(context_ch, context_dim, context_dim, heads=max(1, heads // 2))
        self.fusion = nn.ModuleList(FusionBlock(support_ch, context_dim, support_ch, context_dim, heads, agents)
                                    for _ in range(num_slices))

    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is None:
            return None
        if context.shape[-2:] != tuple(latent_hw):
            raise ValueError(f"context is {tuple(context.shape[-2:])}, latent is {tuple(latent_hw)}")
        return self.context_extractor(context)

    def _fuse_context(self, i: int, support: torch.Tensor, context_features: torch.Tensor | None) -> torch.Tensor:
        if context_features is None:
            return support
        return support + self.fusion[i](support, context_features)
