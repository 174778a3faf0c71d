"""A single-image overfitted codec in the Cool-chic / C3 family (issue 26), our own design.

Per image the encoder fits, from scratch:
- a pyramid of latent grids, level l at ceil(H/2^l) x ceil(W/2^l), one channel each;
- an entropy model ("ARM"), one small conv network shared by all levels, predicting a Laplace
  mean and log-scale for each latent from causal context: the latent's neighbours already
  decoded in its level (checkerboard order: anchors first, then the others, which see their
  four anchor neighbours) and the coarser level upsampled; optionally conditioning features
  (the decoded first image of the pair, pooled to the level's resolution);
- a synthesis network (1x1, 1x1, 3x3 convs) on all levels upsampled to full resolution, plus
  the conditioning image when there is one.

Why checkerboard rather than a raster-scan context: a raster-scan decode is one network call
per latent, hopeless in Python for 300k latents; two passes per level keep the decoder a few
dozen vectorised calls while still using within-level context.

Everything the decoder computes (upsampling, entropy model, synthesis) has an exact integer form
(`mmcodec.layers.integer`): the weights sent in the stream are multiples of 2^-weight_step_bits,
the upsampling kernel is [1,3,3,1]/4, the conditioning features are integers. So the CDFs and
the reconstruction are bit-exact in any process. Training runs the same networks in float32.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

FIXED = 16                       # fixed-point fraction bits of the integer path (ACTIVATION_BITS)
LOG_SCALE_MIN, LOG_SCALE_MAX = math.log(0.04), math.log(64.0)
LATENT_LIMIT = 255.0             # latents are clamped so the integer path's input bound holds


@dataclass(frozen=True)
class OverfitConfig:
    levels: int = 7
    arm_hidden: int = 8
    synth_hidden: int = 16
    out_channels: int = 3
    cond_channels: int = 0       # 0: unconditioned; 1: the decoded visible luma

    def to_bytes(self) -> bytes:
        return bytes([self.levels, self.arm_hidden, self.synth_hidden, self.out_channels, self.cond_channels])

    @classmethod
    def from_bytes(cls, b: bytes) -> "OverfitConfig":
        return cls(*b[:5])

    def asdict(self) -> dict:
        return asdict(self)


def level_shapes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    return [(-(-h // 2 ** l), -(-w // 2 ** l)) for l in range(levels)]


def upsample_kernel() -> torch.Tensor:
    """The x2 upsampling kernel ([1,3,3,1]/4 separable): multiples of 1/16, exact in fixed point."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4.0
    return torch.outer(k, k).reshape(1, 1, 4, 4)


def checkerboard(h: int, w: int) -> torch.Tensor:
    """True at anchor positions ((i + j) even), decoded first in each level."""
    i = torch.arange(h).reshape(-1, 1)
    j = torch.arange(w).reshape(1, -1)
    return ((i + j) % 2) == 0


def build_arm(cfg: OverfitConfig) -> nn.Sequential:
    # inputs: masked latent, pass flag, coarser level, conditioning
    cin = 3 + cfg.cond_channels
    h = cfg.arm_hidden
    return nn.Sequential(nn.Conv2d(cin, h, 3, padding=1), nn.ReLU(), nn.Conv2d(h, h, 1), nn.ReLU(), nn.Conv2d(h, 2, 1))


def build_synth(cfg: OverfitConfig) -> nn.Sequential:
    cin = cfg.levels + cfg.cond_channels
    h = cfg.synth_hidden
    return nn.Sequential(nn.Conv2d(cin, h, 1), nn.ReLU(), nn.Conv2d(h, h, 1), nn.ReLU(),
                         nn.Conv2d(h, cfg.out_channels, 3, padding=1))


def cond_features(cond_image: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Conditioning features per level, in fixed-point units (integer-valued float64, (1,1,h,w)).

    cond_image: the decoded first image, integers (1, C, H, W) in 0..255. Its luma
    (77R + 150G + 29B + 128) >> 8 is centred and scaled to [-1, 1) and box-averaged to each
    level (edge-replicated to a multiple of the block), floored to the fixed-point grid: integer
    arithmetic only, so encoder and decoder get identical features.
    """
    c = cond_image.double()
    if c.shape[1] == 3:
        y = torch.floor((77 * c[:, 0:1] + 150 * c[:, 1:2] + 29 * c[:, 2:3] + 128) / 256)
    else:
        y = c[:, 0:1]
    base = (y - 128) * 2 ** (FIXED - 7)            # (Y - 128) / 128 in units of 2^-16
    out = []
    for l, (hl, wl) in enumerate(shapes):
        s = 2 ** l
        padded = F.pad(base, (0, wl * s - base.shape[3], 0, hl * s - base.shape[2]), mode="replicate")
        summed = F.avg_pool2d(padded, s) * (s * s) if s > 1 else padded   # sums of integers: exact
        out.append(torch.floor(summed / (s * s)))
    return out


def soft_round(y: torch.Tensor, t: float) -> torch.Tensor:
    """Differentiable rounding (Agustsson & Theis 2020); t -> 0 approaches round()."""
    f = torch.floor(y)
    r = y - f - 0.5
    return f + 0.5 + 0.5 * torch.tanh(r / t) / math.tanh(0.5 / t)


def laplace_bits(y: torch.Tensor, mu: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """-log2 P(y) for a unit-bin-discretised Laplace(mu, b), lower-bounded like the coder."""
    b = torch.exp(log_b.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))
    d = (y - mu).abs()
    # P = F(d+.5) - F(d-.5) with the CDF folded on |y - mu|; the two branches are stable
    lo = torch.clamp(d - 0.5, min=0.0)
    inner = 1.0 - 0.5 * (torch.exp(-(d + 0.5) / b) + torch.exp(-(0.5 - d).clamp(min=0) / b))
    outer = 0.5 * (torch.exp(-lo / b) - torch.exp(-(d + 0.5) / b))
    p = torch.where(d < 0.5, inner, outer)
    return -torch.log2(p.clamp(min=2 ** -16))


class OverfittedImage(nn.Module):
    """The trainable state for one image: latents, ARM, synthesis (float32 training path)."""

    def __init__(self, cfg: OverfitConfig, h: int, w: int, cond: torch.Tensor | None = None,
                 log_scale_init: float = 0.0) -> None:
        super().__init__()
        self.cfg, self.h, self.w = cfg, h, w
        self.shapes = level_shapes(h, w, cfg.levels)
        self.latents = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, hl, wl)) for hl, wl in self.shapes])
        self.arm = build_arm(cfg)
        self.synth = build_synth(cfg)
        with torch.no_grad():
            self.arm[-1].weight.mul_(0.1)
            self.arm[-1].bias.zero_()
            # Why: latents start at 0; a small initial scale makes them cheap from the first
            # iteration, where b = 1 costs ~1.5 bits per latent until the ARM learns otherwise.
            self.arm[-1].bias[1] = log_scale_init
        self.register_buffer("kernel", upsample_kernel())
        if cfg.cond_channels:
            if cond is None:
                raise ValueError("a conditioned configuration needs the conditioning image")
            feats = cond_features(cond, self.shapes)
            self.cond = [(f / 2 ** FIXED).float() for f in feats]
        else:
            self.cond = None
        self.masks = [checkerboard(hl, wl).float().reshape(1, 1, hl, wl) for hl, wl in self.shapes]

    def up2(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        return F.conv_transpose2d(x, self.kernel, stride=2, padding=1)[..., :shape[0], :shape[1]]

    def upsample_all(self, ys: list[torch.Tensor]) -> torch.Tensor:
        ups = []
        for l, y in enumerate(ys):
            for k in range(l - 1, -1, -1):
                y = self.up2(y, self.shapes[k])
            ups.append(y)
        return torch.cat(ups, dim=1)

    def arm_params(self, ys: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for l, y in enumerate(ys):
            m = self.masks[l]
            coarse = self.up2(ys[l + 1], self.shapes[l]) if l + 1 < len(ys) else torch.zeros_like(y)
            extra = [self.cond[l]] if self.cond is not None else []
            pa = self.arm(torch.cat([torch.zeros_like(y), torch.zeros_like(y), coarse] + extra, dim=1))
            pb = self.arm(torch.cat([y * m, torch.ones_like(y), coarse] + extra, dim=1))
            p = torch.where(m.bool(), pa, pb)
            out.append((p[:, 0:1], p[:, 1:2]))
        return out

    def forward(self, mode: str, t: float = 0.3, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction in [0,1]-ish units, total latent bits) under the given quantisation proxy."""
        ys = []
        for y in self.latents:
            y = y.clamp(-LATENT_LIMIT, LATENT_LIMIT)
            if mode == "soft":
                q = soft_round(y, t)
                if noise > 0:
                    q = q + noise * (torch.rand_like(q) - 0.5)
            elif mode == "ste":
                q = y + (torch.round(y) - y).detach()
            else:
                q = torch.round(y)
            ys.append(q)
        bits = sum(laplace_bits(y, mu, lb).sum() for y, (mu, lb) in zip(ys, self.arm_params(ys)))
        feats = self.upsample_all(ys)
        if self.cond is not None:
            feats = torch.cat([feats, self.cond[0]], dim=1)
        return self.synth(feats), bits


def macs_per_pixel(cfg: OverfitConfig) -> dict[str, float]:
    """Decoder multiplications per image pixel: ARM (two checkerboard passes per latent, on every
    level), synthesis, and the [1,3,3,1] upsampling (4 taps per output sample)."""
    h = cfg.arm_hidden
    arm_pass = (3 + cfg.cond_channels) * 9 * h + h * h + 2 * h
    latents = sum(4.0 ** -l for l in range(cfg.levels))
    s = cfg.synth_hidden
    synth = (cfg.levels + cfg.cond_channels) * s + s * s + 9 * s * cfg.out_channels
    up = sum(4 * 4.0 ** -k for l in range(cfg.levels) for k in range(l)) \
        + sum(4 * 4.0 ** -l for l in range(cfg.levels - 1))          # ARM coarser context
    return {"arm": 2 * arm_pass * latents, "synthesis": float(synth), "upsampling": up,
            "total": 2 * arm_pass * latents + synth + up}
