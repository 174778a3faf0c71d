"""Swin-style windowed multi-head *cross*-attention.

Queries come from one feature map, keys and values from another of the same size (for
example the decoder features of a second modality). Attention is restricted to
non-overlapping `window x window` groups of tokens, with a learnable bias per relative
offset inside a window and per head (Liu et al., Swin Transformer, ICCV 2021). Alternating
blocks shift the window grid by half a window so information crosses window borders.

Blocks here work on channel-last token grids (B, H, W, C). `PatchCrossAttention` wraps
them for convolutional (B, C, H, W) feature maps: a p x p patch embedding by a strided
convolution, a stack of blocks, and a transposed convolution back to the input grid.
Nothing here knows about a particular paper.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of `window` -> (B * windows, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * windows, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """(T, T) index into a ((2*window-1)^2)-entry bias table, T = window^2."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])              # (2, T)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)    # (2, T, T), each in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def blocked_pairs(hp: int, wp: int, h: int, w: int, window: int, shift: int,
                  device: torch.device) -> torch.Tensor | None:
    """Blocked (query, key) pairs per window, (windows, T, T) bool, for a padded (hp, wp) grid
    holding an (h, w) map, cyclically shifted by `shift`: keys in padding, and keys from
    another region of a shifted window (tokens that wrapped around the border were not
    neighbours). A token may always attend to itself, so no row is fully blocked. None when
    nothing is blocked."""
    if shift == 0 and hp == h and wp == w:
        return None
    region = torch.zeros(hp, wp, dtype=torch.long, device=device)
    if shift:
        label = 0
        for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                region[hs, ws] = label
                label += 1
    valid = torch.zeros(hp, wp, dtype=torch.bool, device=device)
    valid[:h, :w] = True
    if shift:
        # The region labels above describe the rolled map; padding is rolled with the data.
        valid = torch.roll(valid, (-shift, -shift), (0, 1))
    region_w = window_partition(region[None, :, :, None], window)[..., 0]   # (windows, T)
    valid_w = window_partition(valid[None, :, :, None], window)[..., 0]
    blocked = (region_w[:, :, None] != region_w[:, None, :]) | ~valid_w[:, None, :]
    eye = torch.eye(window * window, dtype=torch.bool, device=device)
    return blocked & ~eye


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask (windows, T, T) of `blocked_pairs` for an unpadded shifted grid."""
    blocked = blocked_pairs(h, w, h, w, window, shift, device)
    return torch.zeros(blocked.shape, device=device).masked_fill_(blocked, float("-inf"))


def relative_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(heads, T, T) relative position bias from a ((2*window-1)^2, heads) table."""
    t = index.shape[0]
    return table[index.view(-1)].view(t, t, table.shape[1]).permute(2, 0, 1)


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                     bias: torch.Tensor) -> torch.Tensor:
    """softmax(scale * q k^T + bias) v over the tokens of each window: q (..., T, hd),
    k and v (..., S, hd), bias broadcastable to (..., T, S)."""
    return ((q * scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1) @ v


class WindowCrossAttention(nn.Module):
    """Multi-head attention inside windows: queries from `x`, keys/values from `context`,
    plus a learnable relative position bias (one table per head)."""

    def __init__(self, dim: int, window: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.dim, self.window, self.heads = dim, window, heads
        self.scale = (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        # Derived from `window`; not part of the weights.
        self.register_buffer("relative_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x, context: (B * windows, T, dim); mask: (windows, T, T) additive, or None."""
        bw, t, c = x.shape
        hd = c // self.heads
        q = self.to_q(x).view(bw, t, self.heads, hd).transpose(1, 2)                  # (bw, h, T, hd)
        k, v = self.to_kv(context).view(bw, t, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        bias = relative_bias(self.relative_position_bias, self.relative_index)[None]    # (1, h, T, T)
        if mask is not None:   # windows are ordered batch-major
            bias = (bias + mask[:, None]).repeat(bw // mask.shape[0], 1, 1, 1)
        out = window_attention(q, k, v, self.scale, bias)                              # (bw, h, T, hd)
        return self.proj(out.transpose(1, 2).reshape(bw, t, c))


class SwinCrossAttentionBlock(nn.Module):
    """LN -> (shifted) window cross-attention -> residual; LN -> MLP -> residual.

    Works on (B, H, W, C) grids whose H and W are multiples of `window`.
    """

    def __init__(self, dim: int, heads: int = 3, window: int = 4, shifted: bool = False,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.shift = window // 2 if shifted else 0
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attention = WindowCrossAttention(dim, window, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        if h % self.window or w % self.window:
            raise ValueError(f"grid {h}x{w} is not a multiple of window {self.window}")
        q, kv = self.norm_query(x), self.norm_context(context)
        # A grid of a single window has nothing to shift across.
        shift = self.shift if (h > self.window or w > self.window) else 0
        mask = None
        if shift:
            q = torch.roll(q, (-shift, -shift), dims=(1, 2))
            kv = torch.roll(kv, (-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(h, w, self.window, shift, x.device)
        attended = self.attention(window_partition(q, self.window), window_partition(kv, self.window), mask)
        attended = window_merge(attended, self.window, h, w)
        if shift:
            attended = torch.roll(attended, (shift, shift), dims=(1, 2))
        x = x + attended
        return x + self.mlp(self.norm_mlp(x))


class PatchCrossAttention(nn.Module):
    """Cross-attention between two conv feature maps of the same spatial size.

    Both maps are cut into p x p patches by strided convolutions (patch embedding), pass
    `depth` Swin cross-attention blocks (odd blocks use shifted windows), and a transposed
    convolution maps the tokens back to `in_ch` channels on the input grid. The result is
    added to the query map; with `zero_init` the module starts as the identity, so it can be
    inserted into a pretrained network without changing its output.
    """

    def __init__(self, in_ch: int, context_ch: int, dim: int = 48, heads: int = 3, window: int = 4,
                 patch: int = 2, depth: int = 2, mlp_ratio: float = 4.0, zero_init: bool = True) -> None:
        super().__init__()
        self.patch, self.window = patch, window
        self.embed_query = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.embed_context = nn.Conv2d(context_ch, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(
            SwinCrossAttentionBlock(dim, heads, window, shifted=bool(i % 2), mlp_ratio=mlp_ratio)
            for i in range(depth))
        self.recover = nn.ConvTranspose2d(dim, in_ch, patch, stride=patch)
        if zero_init:
            nn.init.zeros_(self.recover.weight)
            nn.init.zeros_(self.recover.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W) queries; context: (B, context_ch, H, W) keys/values."""
        h, w = x.shape[-2:]
        if context.shape[-2:] != (h, w):
            raise ValueError(f"context {tuple(context.shape[-2:])} and query {(h, w)} sizes differ")
        unit = self.patch * self.window
        pad_h, pad_w = (-h) % unit, (-w) % unit
        if pad_h or pad_w:  # windows must tile the token grid
            x_in = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            context = F.pad(context, (0, pad_w, 0, pad_h), mode="replicate")
        else:
            x_in = x
        q = self.embed_query(x_in).permute(0, 2, 3, 1)
        kv = self.embed_context(context).permute(0, 2, 3, 1)
        for block in self.blocks:
            q = block(q, kv)
        out = self.recover(q.permute(0, 3, 1, 2))
        return x + out[..., :h, :w]
