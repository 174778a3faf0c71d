"""Latent-domain tiling: code big images with bounded memory.

A learned codec's peak memory is its full-resolution activations: the analysis transform g_a
and the synthesis transform g_s hold tens of channels at 1/2 and 1/4 of the image size, about
a quarter of a gigabyte per megapixel for the shipped models, while the latent y is 16x
smaller per side (4.7 M values for a 12-megapixel image). So only the transforms are tiled:

- the encoder runs g_a over pixel tiles, each with a halo of context, and stitches the
  tiles' central latents into the whole y;
- y and z are entropy-coded whole, exactly as without tiling (same streams);
- g_s runs over latent tiles of y_hat, each with a halo, and the central pixels of each tile
  are stitched into the image. The encoder computes its reconstruction (whose CRC the stream
  carries) with this same tiled synthesis, and the stream records the tile size and halo
  (docs/bitstream.md), so the decoder repeats it bit for bit.

The halos cover the transforms' whole receptive field (`receptive_reach`, computed from the
layers): a tile's central outputs then see exactly the inputs the whole-image transform
would give them, so tiled and whole-image coding compute the same function. There are no
seams and no rate cost; the results differ only by float rounding (convolutions of different
sizes may sum in a different order), far below the quantisation step.

Tiles form a grid in latent units: each side of the latent is cut into ceil(length / tile)
near-equal spans, the longer ones first (`tile_spans`), so there are no thin slivers whose
halos would cost more than their content.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
from compressai.layers import GDN

# The stream's tiling record and geometry are the format's (torch-free); tiling uses them.
from mmcodec.bitstream.layout import LATENT_STRIDE, MAX_TILE, MIN_TILE, Tiling
from mmcodec.errors import BadInputError

# Tiling is applied automatically above AUTO_TILE_PIXELS (padded pixels per image), with tiles
# of DEFAULT_TILE pixels: smaller images code whole (as before tiling existed), bigger ones
# keep the transforms' memory at that of one tile.
DEFAULT_TILE = 1024
AUTO_TILE_PIXELS = 2048 * 1024

# Layers that mix channels but not positions: they do not widen the receptive field.
_POINTWISE = (GDN, nn.LeakyReLU, nn.ReLU, nn.GELU, nn.Identity)


class NotTileableError(TypeError):
    """A transform whose receptive field this module cannot bound (e.g. attention)."""


def tile_spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Cut 0..length into ceil(length / tile) near-equal [start, end) spans, longer ones first."""
    count = -(-length // tile)
    base, extra = divmod(length, count)
    spans, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        spans.append((start, end))
        start = end
    return spans


def _square(value: int | tuple[int, ...], what: str) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise NotTileableError(f"non-square {what} {values}")
    return values[0]


def receptive_reach(transform: nn.Module) -> tuple[int, int]:
    """(stride, reach) of a downsampling (Conv2d) or upsampling (ConvTranspose2d) stack:
    `stride` pixels per latent, and `reach`, the latents of context on each side a tile
    needs so that its core is computed exactly as in the whole image."""
    if not isinstance(transform, nn.Sequential):
        raise NotTileableError(f"{type(transform).__name__} is not a plain layer stack")
    layers = list(transform)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    deconvs = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
    if convs and deconvs or not (convs or deconvs):
        raise NotTileableError("expected only strided convolutions or only transposed convolutions")
    stride = math.prod(_square(m.stride, "stride") for m in convs or deconvs)
    # The span of values at the transform's input that one latent's core depends on,
    # propagated from the output side back to the input side.
    lo, hi = (0, 0) if convs else (0, stride - 1)
    for m in reversed(layers):
        if isinstance(m, _POINTWISE):
            continue
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            raise NotTileableError(f"cannot bound the receptive field of {type(m).__name__}")
        k, s = _square(m.kernel_size, "kernel"), _square(m.stride, "stride")
        p, d = _square(m.padding, "padding"), _square(m.dilation, "dilation")
        if isinstance(m, nn.ConvTranspose2d):  # output o = s*i - p + d*j for kernel tap j
            lo, hi = -((-(lo + p - d * (k - 1))) // s), (hi + p) // s
        else:                                  # output o reads inputs s*o - p + d*j
            lo, hi = s * lo - p, s * hi - p + d * (k - 1)
    if convs:  # input pixels [lo, hi] around the core pixels [0, stride) of latent 0
        return stride, max(0, -(-(-lo) // stride), -(-(hi - (stride - 1)) // stride))
    return stride, max(0, -lo, hi)  # input latents [lo, hi] around latent 0


def _windows(latent_hw: tuple[int, int], tile: int, halo: int):
    """Per tile: its core as latent slices, and the halo-extended window it is computed from."""
    for r0, r1 in tile_spans(latent_hw[0], tile):
        for c0, c1 in tile_spans(latent_hw[1], tile):
            w0, w1 = max(r0 - halo, 0), min(r1 + halo, latent_hw[0])
            v0, v1 = max(c0 - halo, 0), min(c1 + halo, latent_hw[1])
            yield (r0, r1, c0, c1), (w0, w1, v0, v1)


def apply_analysis(g_a: nn.Module, x: torch.Tensor, tiling: Tiling | None) -> torch.Tensor:
    """g_a(x), over tiles when `tiling` is given (halo: g_a's receptive field)."""
    if tiling is None:
        return g_a(x)
    stride, reach = receptive_reach(g_a)
    latent_hw = (x.shape[-2] // stride, x.shape[-1] // stride)
    if latent_hw[0] * stride != x.shape[-2] or latent_hw[1] * stride != x.shape[-1]:
        raise ValueError(f"image {tuple(x.shape[-2:])} is not a multiple of {stride}")
    y = None
    for (r0, r1, c0, c1), (w0, w1, v0, v1) in _windows(latent_hw, tiling.tile, reach):
        part = g_a(x[..., w0 * stride:w1 * stride, v0 * stride:v1 * stride])
        if y is None:
            y = part.new_empty(*part.shape[:2], *latent_hw)
        y[..., r0:r1, c0:c1] = part[..., r0 - w0:r1 - w0, c0 - v0:c1 - v0]
    return y


def apply_synthesis(g_s: nn.Module, y_hat: torch.Tensor, tiling: Tiling | None) -> torch.Tensor:
    """g_s(y_hat), over latent tiles with the stream's halo when `tiling` is given. The output
    buffer is the only full-resolution tensor."""
    if tiling is None:
        return g_s(y_hat)
    stride, _ = receptive_reach(g_s)
    latent_hw = tuple(y_hat.shape[-2:])
    x_hat = None
    for (r0, r1, c0, c1), (w0, w1, v0, v1) in _windows(latent_hw, tiling.tile, tiling.halo):
        part = g_s(y_hat[..., w0:w1, v0:v1])
        if x_hat is None:
            x_hat = part.new_empty(*part.shape[:2], latent_hw[0] * stride, latent_hw[1] * stride)
        x_hat[..., r0 * stride:r1 * stride, c0 * stride:c1 * stride] = \
            part[..., (r0 - w0) * stride:(r1 - w0) * stride, (c0 - v0) * stride:(c1 - v0) * stride]
    return x_hat


def check_tile_option(tile: int | None) -> int | None:
    """Validate a user's tile size in pixels: None (automatic), 0 (whole image) or a multiple
    of LATENT_STRIDE from MIN_TILE to MAX_TILE."""
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or \
            tile != 0 and not (MIN_TILE <= tile <= MAX_TILE and tile % LATENT_STRIDE == 0):
        raise BadInputError(f"tile must be 0 (whole image) or a multiple of {LATENT_STRIDE} from {MIN_TILE} "
                            f"to {MAX_TILE} pixels, got {tile!r}")
    return int(tile)


def plan_tiling(model: nn.Module, tile: int | None, padded_hw: tuple[int, int], name: str = "this model"
                ) -> Tiling | None:
    """The tiling to code an image of `padded_hw` pixels with; None = whole image.

    `tile` is the user's option in pixels: None tiles automatically (DEFAULT_TILE above
    AUTO_TILE_PIXELS, for models that support tiling), 0 never tiles. An image that fits in
    one tile is coded whole: one tile without halo is the whole-image computation."""
    tile = check_tile_option(tile)
    supported = getattr(model, "supports_tiling", False)
    if tile == 0 or tile is None and (padded_hw[0] * padded_hw[1] <= AUTO_TILE_PIXELS or not supported):
        return None
    if not supported:
        raise BadInputError(f"{name} codes whole images only (tiling needs the separate architecture); "
                            "use tile 0")
    tile = tile or DEFAULT_TILE
    if padded_hw[0] <= tile and padded_hw[1] <= tile:
        return None
    return Tiling(tile // LATENT_STRIDE, model.synthesis_halo())
