"""Mixed transformer-CNN blocks (LIC-TCM style) and fusion blocks for side-modality features.

- `WindowAttention` / `SwinBlock`: multi-head self-attention inside (optionally shifted)
  square windows with a relative position bias. Feature maps of any size are handled by
  zero-padding to a multiple of the window and masking the padded keys, so small latents
  (e.g. the hyper-latent of a 64x64 crop) work. A block can also take *extra key/value
  tokens per window* (prompts), which the image tokens attend to.
- `TCMBlock`: 1x1 conv, split into a residual-CNN branch (local) and a Swin branch
  (non-local), concatenate, 1x1 conv, residual. `PromptedTCMBlock` passes a prompt map to
  its Swin branch.
- `SWAtten`: a gated attention block whose gate comes from Swin blocks (for entropy models).
- `EnhancedSpatialAttention` and `StructurePriorFusion`: fuse a side modality's features into
  a target's feature map; the fusion starts as the identity (zero-initialised output conv),
  so inserting it into a trained codec does not change the codec until it learns to.

The window machinery (partitioning, relative position bias, masks, the attention itself) is
`mmcodec.layers.window_attention`'s, shared with the cross-attention blocks; this module adds
self-attention over padded maps and prompt tokens.
Nothing here knows about a particular paper or modality.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcodec.layers.conv import ResidualBlock
from mmcodec.layers.window_attention import (blocked_pairs, relative_bias, relative_position_index, window_attention,
                                             window_merge, window_partition)


class WindowAttention(nn.Module):
    """Multi-head self-attention over the tokens of one window, with relative position bias.

    `extra` tokens (per window) are added as keys/values only: the image tokens read from
    them, they produce no output of their own.
    """

    def __init__(self, dim: int, head_dim: int, window: int) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"dim {dim} is not a multiple of head_dim {head_dim}")
        self.heads, self.head_dim, self.window = dim // head_dim, head_dim, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, self.heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", relative_position_index(window), persistent=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B*nW, N, C); mask (nW, N, N) True = blocked; extra (B*nW, P, C)."""
        bw, n, c = tokens.shape
        q, k, v = self.qkv(tokens).view(bw, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        bias = relative_bias(self.bias_table, self.bias_index)
        if mask is not None:
            nw = mask.shape[0]
            bias = bias[None].repeat(nw, 1, 1, 1).masked_fill(mask[:, None], float("-inf"))
            bias = bias.repeat(bw // nw, 1, 1, 1)      # windows are ordered batch-major
        if extra is not None:
            p = extra.shape[1]
            # Only the key/value rows of the shared projection: prompts never ask queries.
            kv = F.linear(extra, self.qkv.weight[c:], self.qkv.bias[c:])
            ke, ve = kv.view(bw, p, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            k, v = torch.cat([ke, k], 2), torch.cat([ve, v], 2)
            zeros = bias.new_zeros(*bias.shape[:-1], p)
            bias = torch.cat([zeros, bias], -1)           # prompts: no positional bias, never masked
        out = window_attention(q, k, v, self.head_dim ** -0.5, bias)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual.

    Works on (B, C, H, W). With `prompt_pool` > 0 the block accepts a prompt map (B, C, H, W)
    aligned with the input: it is layer-normed, cut into the same windows, average-pooled by
    `prompt_pool` and prepended to each window's keys/values.
    """

    def __init__(self, dim: int, head_dim: int = 32, window: int = 8, shifted: bool = False,
                 prompt_pool: int = 0, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.window, self.shifted, self.prompt_pool = window, shifted, prompt_pool
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, head_dim, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        if prompt_pool:
            if window % prompt_pool:
                raise ValueError(f"prompt_pool {prompt_pool} must divide the window {window}")
            self.prompt_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = self.window
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        # A shift only mixes windows when there is more than one window along both axes.
        shift = ws // 2 if self.shifted and min(h, w) > ws else 0
        t = x.permute(0, 2, 3, 1)
        y = F.pad(self.norm1(t), (0, 0, 0, wp - w, 0, hp - h))
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        extra = None
        if prompt is not None and self.prompt_pool:
            pr = F.pad(self.prompt_norm(prompt.permute(0, 2, 3, 1)), (0, 0, 0, wp - w, 0, hp - h))
            if shift:
                pr = torch.roll(pr, (-shift, -shift), (1, 2))
            pw = window_partition(pr, ws).view(-1, ws, ws, c).permute(0, 3, 1, 2)
            extra = F.avg_pool2d(pw, self.prompt_pool).flatten(2).transpose(1, 2)
        mask = blocked_pairs(hp, wp, h, w, ws, shift, x.device)
        y = window_merge(self.attn(window_partition(y, ws), mask, extra), ws, hp, wp)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        t = t + y[:, :h, :w]
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2).contiguous()


class TCMBlock(nn.Module):
    """Transformer-CNN mixture block: local (residual CNN) and non-local (window attention)
    branches on a channel split, merged by a 1x1 convolution, with a residual connection.

    Input/output channels: conv_dim + trans_dim.
    """

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int = 32, window: int = 8,
                 shifted: bool = False, prompt_pool: int = 0) -> None:
        super().__init__()
        self.conv_dim, self.trans_dim = conv_dim, trans_dim
        width = conv_dim + trans_dim
        self.split = nn.Conv2d(width, width, 1)
        self.conv_branch = ResidualBlock(conv_dim, conv_dim)
        self.attn_branch = SwinBlock(trans_dim, head_dim, window, shifted, prompt_pool)
        self.merge = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        local, nonlocal_ = self.split(x).split((self.conv_dim, self.trans_dim), 1)
        mixed = torch.cat([self.conv_branch(local), self.attn_branch(nonlocal_, prompt)], 1)
        return x + self.merge(mixed)


class PromptedTCMBlock(TCMBlock):
    """A TCM block whose window attention also reads prompt tokens from a side feature map
    (B, trans_dim, H, W). Parameter names match `TCMBlock` (plus the prompt LayerNorm), so a
    trained TCM codec warm-starts a prompted one."""

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int = 32, window: int = 8,
                 shifted: bool = False, prompt_pool: int = 4) -> None:
        super().__init__(conv_dim, trans_dim, head_dim, window, shifted, prompt_pool)


class TCMStage(nn.Module):
    """`depth` TCM blocks alternating plain (W-MSA) and shifted (SW-MSA) windows, on a
    width of 2 * dim (dim channels per branch)."""

    def __init__(self, dim: int, depth: int = 2, head_dim: int = 32, window: int = 8,
                 prompt_pool: int = 0) -> None:
        super().__init__()
        block = PromptedTCMBlock if prompt_pool else TCMBlock
        self.blocks = nn.ModuleList(block(dim, dim, head_dim, window, bool(i % 2), prompt_pool)
                                    for i in range(depth))

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, prompt)
        return x


class _BottleneckUnit(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual unit (half width inside)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch // 2, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(ch // 2, ch // 2, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(ch // 2, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SWAtten(nn.Module):
    """Gated attention for entropy-model contexts: a trunk of residual units is gated by a
    sigmoid mask computed from a W-MSA + SW-MSA pair (non-local), at a reduced width."""

    def __init__(self, in_ch: int, out_ch: int, inter_ch: int = 128, head_dim: int = 16,
                 window: int = 8) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_ch, inter_ch, 1)
        self.non_local = nn.ModuleList([SwinBlock(inter_ch, head_dim, window, False),
                                        SwinBlock(inter_ch, head_dim, window, True)])
        self.trunk = nn.Sequential(*[_BottleneckUnit(inter_ch) for _ in range(3)])
        self.mask = nn.Sequential(*[_BottleneckUnit(inter_ch) for _ in range(3)], nn.Conv2d(inter_ch, inter_ch, 1))
        self.expand = nn.Conv2d(inter_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        z = x
        for blk in self.non_local:
            z = blk(z)
        return self.expand(x + self.trunk(x) * torch.sigmoid(self.mask(z)))


class EnhancedSpatialAttention(nn.Module):
    """Spatial attention with a large receptive field at low cost (ESA, Liu et al. 2020):
    1x1 reduce, strided conv, max-pool + convs, upsample, 1x1 restore, sigmoid mask."""

    def __init__(self, ch: int, reduced: int | None = None) -> None:
        super().__init__()
        f = reduced or max(ch // 4, 8)
        self.reduce = nn.Conv2d(ch, f, 1)
        self.skip = nn.Conv2d(f, f, 1)
        self.down = nn.Conv2d(f, f, 3, stride=2, padding=1)
        self.body = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(f, f, 3, padding=1))
        self.restore = nn.Conv2d(f, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reduce(x)
        d = self.down(r)
        k = min(7, d.shape[-2], d.shape[-1])     # small maps (deep features of small crops)
        d = self.body(F.max_pool2d(d, k, stride=3))
        d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.restore(d + self.skip(r)))


class StructurePriorFusion(nn.Module):
    """Fuse side-modality features into target features of the same resolution.

    A conv per modality, concatenation, enhanced spatial attention over both, the sum of the
    two attended halves, a 3x3 conv, added to the target. The last conv starts at zero: the
    module is the identity until trained.
    """

    def __init__(self, target_ch: int, side_ch: int, ch: int | None = None) -> None:
        super().__init__()
        ch = ch or target_ch
        self.ch = ch
        self.target_conv = nn.Conv2d(target_ch, ch, 3, padding=1)
        self.side_conv = nn.Conv2d(side_ch, ch, 3, padding=1)
        self.attention = EnhancedSpatialAttention(2 * ch)
        self.out = nn.Conv2d(ch, target_ch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, target: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        both = torch.cat([F.leaky_relu(self.target_conv(target)), F.leaky_relu(self.side_conv(side))], 1)
        attended = self.attention(both)
        return target + self.out(attended[:, :self.ch] + attended[:, self.ch:])
