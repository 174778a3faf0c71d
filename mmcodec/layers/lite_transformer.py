"""Lite Transformer block (after Wu et al., "Lite Transformer with Long-Short Range
Attention", ICLR 2020), adapted to 2-D feature maps.

The channels are split in two: one half goes through *global* multi-head self-attention
(long range; keys/values are average-pooled, which both cuts the cost and keeps the
low-frequency content), the other half through a depth-wise convolution branch (short
range). The halves are re-joined, projected, and followed by a point-wise feed-forward
layer, each with a pre-LayerNorm residual. CCEM's LCEB (low-frequency context extraction)
is this block applied to previously decoded latent slices.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcodec.layers.agent_attention import ChannelLayerNorm


class GlobalAttention(nn.Module):
    """Multi-head softmax attention over all positions of a (B, C, H, W) map, with keys and
    values average-pooled by `kv_pool` (ceil mode, so tiny maps still have one token).
    Self-attention by default; pass `context` (same channels) for cross-attention."""

    def __init__(self, dim: int, heads: int = 2, kv_pool: int = 2) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.kv_pool = heads, kv_pool
        self.to_q = nn.Conv2d(dim, dim, 1)
        self.to_kv = nn.Conv2d(dim, 2 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        source = x if context is None else context
        pooled = source if self.kv_pool <= 1 else F.avg_pool2d(source, self.kv_pool, ceil_mode=True)
        q = self.to_q(x).reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
        k, v = (t.reshape(b, self.heads, c // self.heads, -1).transpose(-1, -2)
                for t in self.to_kv(pooled).chunk(2, 1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class LiteTransformerBlock(nn.Module):
    """Long-short range attention (global attention || depth-wise conv) + feed-forward."""

    def __init__(self, dim: int, heads: int = 2, kv_pool: int = 2, kernel: int = 5,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("dim must be even (it is split between the two branches)")
        half = dim // 2
        self.norm1 = ChannelLayerNorm(dim)
        self.attention = GlobalAttention(half, heads, kv_pool)
        self.conv_branch = nn.Sequential(
            nn.Conv2d(half, half, 1), nn.Conv2d(half, half, kernel, padding=kernel // 2, groups=half),
            nn.GELU(), nn.Conv2d(half, half, 1))
        self.merge = nn.Conv2d(dim, dim, 1)
        self.norm2 = ChannelLayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        long_range, short_range = self.norm1(x).chunk(2, 1)
        x = x + self.merge(torch.cat([self.attention(long_range), self.conv_branch(short_range)], 1))
        return x + self.mlp(self.norm2(x))


class LiteTransformer(nn.Module):
    """in_ch -> 1x1 embed -> `depth` Lite Transformer blocks -> 1x1 -> out_ch."""

    def __init__(self, in_ch: int, out_ch: int, dim: int = 64, depth: int = 1, heads: int = 2,
                 kv_pool: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_ch, dim, 1)
        self.blocks = nn.Sequential(*[LiteTransformerBlock(dim, heads, kv_pool) for _ in range(depth)])
        self.out = nn.Conv2d(dim, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.embed(x)))
