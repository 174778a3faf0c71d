"""The cross-modal fusion block: one modality's features query another's through
cross-attention, and a zero-initialised projection adds the answer as a residual. Used in the
entropy model (CCEM LCFB) and in the encoder's latent exchange (mmcodec.crossmodal)."""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.layers.agent_attention import AgentAttention, ChannelLayerNorm
from mmcodec.layers.lite_transformer import GlobalAttention

FUSION_ATTENTION = ("agent", "full")


class FusionBlock(nn.Module):
    """Patch embedding + LayerNorm -> cross-attention -> patch recovery.

    Queries come from `query` (query_ch channels), keys/values from `context`
    (context_ch channels). Returns out_ch channels at the query resolution; the caller adds
    it to its own features (a residual). With `zero_init`, the recovery projection starts
    at zero so a freshly added block leaves a pretrained path unchanged. `attention` is
    "agent" (linear cost, mmcodec.layers.agent_attention) or "full" (plain softmax attention over all
    positions, quadratic cost; what the CCEM paper names for its encoder exchange).
    """

    def __init__(self, query_ch: int, context_ch: int, out_ch: int, dim: int = 64, heads: int = 4,
                 agents: int = 7, zero_init: bool = True, attention: str = "agent") -> None:
        super().__init__()
        if attention not in FUSION_ATTENTION:
            raise ValueError(f"unknown fusion attention {attention!r}; known: {', '.join(FUSION_ATTENTION)}")
        self.embed_query = nn.Conv2d(query_ch, dim, 1)
        self.embed_context = nn.Conv2d(context_ch, dim, 1)
        self.norm_query = ChannelLayerNorm(dim)
        self.norm_context = ChannelLayerNorm(dim)
        self.attention = (AgentAttention(dim, heads, agents) if attention == "agent"
                          else GlobalAttention(dim, heads, kv_pool=1))
        self.recover = nn.Conv2d(dim, out_ch, 1)
        if zero_init:
            nn.init.zeros_(self.recover.weight)
            nn.init.zeros_(self.recover.bias)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self.norm_query(self.embed_query(query))
        kv = self.norm_context(self.embed_context(context))
        return self.recover(self.attention(q, kv))
