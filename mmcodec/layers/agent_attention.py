"""Agent attention (Han et al., "Agent Attention: On the Integration of Softmax and Linear
Attention", ECCV 2024), written so that queries and keys/values may come from different
feature maps (cross-modal fusion).

A small set of *agent* tokens, obtained by pooling the queries, first gathers information
from all keys/values and then broadcasts it back to every query. The cost is linear in
the number of tokens, so the block can run at full latent resolution on large images:

    A  = Pool(Q)                                   (n agents)
    V' = softmax(A Kᵀ / √d + B1) V                 agent aggregation
    F  = softmax(Q Aᵀ / √d + B2) V'                agent broadcast
    out = F + DWC(V)                               depth-wise conv restores local diversity

B1, B2 are learned position biases kept on a small grid and resized to the actual key /
query grid, so any image size works.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _tokens(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, heads, H*W, C/heads)."""
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w).transpose(-1, -2)


class AgentAttention(nn.Module):
    """Multi-head agent attention on (B, dim, H, W) maps; `query` and `context` may differ.

    `agents` is the side of the square agent grid (agents**2 agent tokens); `bias_grid` the
    side of the grid on which the position biases are stored.
    """

    def __init__(self, dim: int, heads: int = 4, agents: int = 7, bias_grid: int = 8,
                 dwc_kernel: int = 3) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.agents = dim, heads, agents
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.to_q = nn.Conv2d(dim, dim, 1)
        self.to_kv = nn.Conv2d(dim, 2 * dim, 1)
        n = agents * agents
        # B1: agent -> key position; B2: query position -> agent.
        self.agent_to_key_bias = nn.Parameter(torch.zeros(heads, n, bias_grid, bias_grid))
        self.query_to_agent_bias = nn.Parameter(torch.zeros(heads, n, bias_grid, bias_grid))
        nn.init.trunc_normal_(self.agent_to_key_bias, std=0.02)
        nn.init.trunc_normal_(self.query_to_agent_bias, std=0.02)
        self.dwc = nn.Conv2d(dim, dim, dwc_kernel, padding=dwc_kernel // 2, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 1)

    def _bias(self, table: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(heads, n, g, g) -> (heads, n, H*W) resized to the token grid."""
        resized = F.interpolate(table, size=hw, mode="bilinear", align_corners=False)
        return resized.flatten(2)

    def forward(self, query: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = query if context is None else context
        b, _, hq, wq = query.shape
        hk, wk = context.shape[-2:]
        q_map = self.to_q(query)
        k_map, v_map = self.to_kv(context).chunk(2, 1)
        agent_map = F.adaptive_avg_pool2d(q_map, self.agents)
        q, k, v = _tokens(q_map, self.heads), _tokens(k_map, self.heads), _tokens(v_map, self.heads)
        a = _tokens(agent_map, self.heads)                                  # (B, h, n, d)

        b1 = self._bias(self.agent_to_key_bias, (hk, wk))                   # (h, n, Nk)
        agent_values = torch.softmax(a @ k.transpose(-1, -2) * self.scale + b1, dim=-1) @ v
        b2 = self._bias(self.query_to_agent_bias, (hq, wq)).transpose(-1, -2)  # (h, Nq, n)
        out = torch.softmax(q @ a.transpose(-1, -2) * self.scale + b2, dim=-1) @ agent_values

        out = out.transpose(-1, -2).reshape(b, self.dim, hq, wq)
        local = self.dwc(v_map)
        if local.shape[-2:] != (hq, wq):
            local = F.interpolate(local, size=(hq, wq), mode="bilinear", align_corners=False)
        return self.proj(out + local)
