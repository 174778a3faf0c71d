"""The overfitted codec's bitstream: quantised weights + range-coded latents, decoded exactly.

Stream layout (big-endian):
  b"MMOF", version (1), height (2), width (2), OverfitConfig (5), weight step bits q (1),
  weight payload length (4), latent payload length (4), weight payload, latent payload,
  CRC32 of everything before it (4).

- Weights: every ARM and synthesis parameter is round(w * 2^q); each tensor is coded with a
  signed exponential-Golomb code of its own order (4 bits): small tensors, no table to send.
- Latents: rANS (CompressAI's coder) with one CDF per (scale index, mean eighth). The ARM runs
  in the exact integer path (`mmcodec.layers.integer.IntegerNetwork`); its outputs are rounded
  to a mean grid of 1/8 and a log-scale grid of 64 steps with integer arithmetic, so encoder and
  decoder select the same CDF in any process. Values outside a CDF's range use the coder's
  escape (bypass) symbols, so any latent value can be coded.
- The CRC is checked before any payload is parsed: a truncated or altered stream is a
  BitstreamError, never a crash in the rANS decoder.
"""
from __future__ import annotations

import math
import struct
import zlib
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from mmcodec.errors import BitstreamError
from mmcodec.layers.integer import IntegerNetwork
from mmcodec.overfitted.model import (FIXED, LATENT_LIMIT, LOG_SCALE_MAX, LOG_SCALE_MIN, OverfitConfig,
                                      OverfittedImage, build_arm, build_synth, checkerboard, cond_features,
                                      level_shapes, upsample_kernel)

MAGIC = b"MMOF"
VERSION = 1
_HEADER = struct.Struct(">4sBHH5sBII")
N_SCALES = 64
MEAN_STEPS = 8                   # the mean is coded to 1/8 of a latent step
_LS_MIN = round(LOG_SCALE_MIN * 2 ** FIXED)
_LS_STEP = round((LOG_SCALE_MAX - LOG_SCALE_MIN) / (N_SCALES - 1) * 2 ** FIXED)
CDF_PRECISION = 16


# ---------------------------------------------------------------- weights
def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters()]


def quantise_weights(arm: nn.Module, synth: nn.Module, q: int) -> None:
    """Round every network parameter to a multiple of 2^-q, in place."""
    with torch.no_grad():
        for p in _params(arm) + _params(synth):
            p.copy_(torch.round(p * 2 ** q) / 2 ** q)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, n: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def get(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("overfitted stream: weight payload ends early")
            v = (v << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v


def _eg_bits(n: int, k: int) -> int:
    return 2 * ((n >> k) + 1).bit_length() - 1 + k


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def encode_weights(arm: nn.Module, synth: nn.Module, q: int) -> bytes:
    w = _BitWriter()
    for p in _params(arm) + _params(synth):
        ints = [_zigzag(int(v)) for v in torch.round(p.detach().double() * 2 ** q).flatten().tolist()]
        k = min(range(16), key=lambda k: sum(_eg_bits(n, k) for n in ints))
        w.put(k, 4)
        for n in ints:
            m = (n >> k) + 1
            nb = m.bit_length()
            w.put(0, nb - 1)
            w.put(m, nb)
            if k:
                w.put(n & ((1 << k) - 1), k)
    return w.to_bytes()


def decode_weights(data: bytes, arm: nn.Module, synth: nn.Module, q: int) -> None:
    r = _BitReader(data)
    with torch.no_grad():
        for p in _params(arm) + _params(synth):
            k = r.get(4)
            vals = []
            for _ in range(p.numel()):
                zeros = 0
                while r.get(1) == 0:
                    zeros += 1
                    if zeros > 40:
                        raise BitstreamError("overfitted stream: bad weight code")
                m = (1 << zeros) | r.get(zeros)
                n = ((m - 1) << k) | (r.get(k) if k else 0)
                vals.append(n // 2 if n % 2 == 0 else -(n + 1) // 2)
            p.copy_(torch.tensor(vals, dtype=torch.float64).reshape(p.shape).float() / 2 ** q)


# ---------------------------------------------------------------- CDF tables
def _table_scale(k: int) -> float:
    return math.exp((_LS_MIN + k * _LS_STEP) / 2 ** FIXED)


@lru_cache(maxsize=1)
def cdf_tables() -> tuple[list[list[int]], list[int], list[int]]:
    """CDFs indexed by scale_index * MEAN_STEPS + mean_eighth, with lengths and offsets."""
    from compressai._CXX import pmf_to_quantized_cdf
    cdfs, lengths, offsets = [], [], []
    for k in range(N_SCALES):
        b = _table_scale(k)
        r = min(int(math.ceil(12 * b)) + 2, 1000)
        edges = np.arange(-r, r + 2, dtype=np.float64) - 0.5
        for f in range(MEAN_STEPS):
            d = edges - f / MEAN_STEPS
            cdf = np.where(d < 0, 0.5 * np.exp(np.minimum(d, 0) / b), 1 - 0.5 * np.exp(-np.maximum(d, 0) / b))
            pmf = np.diff(cdf)
            tail = max(0.0, 1.0 - float(pmf.sum()))
            q = pmf_to_quantized_cdf(pmf.tolist() + [tail], CDF_PRECISION)
            cdfs.append(list(q))
            lengths.append(len(q))
            offsets.append(-r)
    return cdfs, lengths, offsets


def select(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ARM outputs (integer-valued float64, units 2^-16; channel 0 mean, 1 log-scale) ->
    (table index, integer base) with integer arithmetic only."""
    p = params.to(torch.int64)
    mu = p[:, 0].clamp(-int(LATENT_LIMIT) << FIXED, int(LATENT_LIMIT) << FIXED)
    m8 = (mu + (1 << (FIXED - 4))) >> (FIXED - 3)           # round(mu * 8)
    base = m8 >> 3
    frac = m8 & 7
    sidx = ((p[:, 1] - _LS_MIN + _LS_STEP // 2) // _LS_STEP).clamp(0, N_SCALES - 1)
    return sidx * MEAN_STEPS + frac, base


# ---------------------------------------------------------------- exact networks
class ExactDecoder:
    """The integer-exact ARM, upsampler and synthesis of one stream."""

    def __init__(self, cfg: OverfitConfig, arm: nn.Module, synth: nn.Module) -> None:
        self.cfg = cfg
        self.arm = IntegerNetwork(arm)
        self.synth = IntegerNetwork(synth)
        up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            up.weight.copy_(upsample_kernel())
        self.up = IntegerNetwork(nn.Sequential(up))

    def up2(self, y: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        return self.up.run(y)[..., :shape[0], :shape[1]]

    def arm_inputs(self, y_fixed: torch.Tensor | None, coarse: torch.Tensor, cond: torch.Tensor | None,
                   shape: tuple[int, int]) -> torch.Tensor:
        zero = torch.zeros(1, 1, *shape, dtype=torch.float64)
        if y_fixed is None:
            parts = [zero, zero, coarse]
        else:
            parts = [y_fixed, torch.full_like(zero, 2.0 ** FIXED), coarse]
        return torch.cat(parts + ([cond] if cond is not None else []), dim=1)

    def synthesise(self, ys_fixed: list[torch.Tensor], shapes: list[tuple[int, int]],
                   cond0: torch.Tensor | None) -> np.ndarray:
        ups = []
        for l, y in enumerate(ys_fixed):
            for k in range(l - 1, -1, -1):
                y = self.up2(y, shapes[k])
            ups.append(y)
        feats = torch.cat(ups + ([cond0] if cond0 is not None else []), dim=1)
        out = self.synth.run(feats)
        pix = torch.floor((out * 255 + 2.0 ** (FIXED - 1)) / 2.0 ** FIXED).clamp(0, 255)
        return pix[0].permute(1, 2, 0).to(torch.uint8).numpy()


def _levels_order(cfg: OverfitConfig) -> range:
    return range(cfg.levels - 1, -1, -1)


def _to_tensor_image(img: np.ndarray) -> torch.Tensor:
    a = torch.from_numpy(np.ascontiguousarray(img)).double()
    return (a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None])


def encode(model: OverfittedImage, q: int, cond_image: np.ndarray | None = None) -> tuple[bytes, np.ndarray]:
    """Quantise `model`'s weights to 2^-q (in place), code it; (stream, exact reconstruction)."""
    from compressai.ans import RansEncoder
    cfg, shapes = model.cfg, model.shapes
    quantise_weights(model.arm, model.synth, q)
    wbytes = encode_weights(model.arm, model.synth, q)
    dec = ExactDecoder(cfg, model.arm, model.synth)
    conds = cond_features(_to_tensor_image(cond_image), shapes) if cfg.cond_channels else None
    ys = [torch.round(y.detach().double().clamp(-LATENT_LIMIT, LATENT_LIMIT)) for y in model.latents]
    symbols, indexes = [], []
    ys_fixed: list[torch.Tensor | None] = [None] * cfg.levels
    for l in _levels_order(cfg):
        shape = shapes[l]
        coarse = dec.up2(ys_fixed[l + 1], shape) if l + 1 < cfg.levels else torch.zeros(1, 1, *shape, dtype=torch.float64)
        cond = conds[l] if conds else None
        m = checkerboard(*shape)
        y_fixed = ys[l] * 2.0 ** FIXED
        for pass_b in (False, True):
            inp = dec.arm_inputs(y_fixed * m if pass_b else None, coarse, cond, shape)
            params = dec.arm.run(inp)[0].permute(1, 2, 0)           # (h, w, 2)
            sel = ~m if pass_b else m
            idx, base = select(params[sel])
            symbols.append(ys[l][0, 0][sel].to(torch.int64) - base)
            indexes.append(idx)
        ys_fixed[l] = y_fixed
    cdfs, lengths, offsets = cdf_tables()
    lbytes = RansEncoder().encode_with_indexes(torch.cat(symbols).tolist(), torch.cat(indexes).tolist(),
                                               cdfs, lengths, offsets)
    recon = dec.synthesise(ys_fixed, shapes, conds[0] if conds else None)
    if cfg.out_channels == 1:
        recon = recon[..., 0]
    head = _HEADER.pack(MAGIC, VERSION, model.h, model.w, cfg.to_bytes(), q, len(wbytes), len(lbytes))
    body = head + wbytes + lbytes
    return body + struct.pack(">I", zlib.crc32(body)), recon


def decode(stream: bytes, cond_image: np.ndarray | None = None) -> np.ndarray:
    """Decode a stream written by `encode` (the conditioning image must be the decoded first image)."""
    from compressai.ans import RansDecoder
    if len(stream) < _HEADER.size + 4:
        raise BitstreamError(f"overfitted stream: {len(stream)} bytes is shorter than its header")
    body, crc = stream[:-4], struct.unpack(">I", stream[-4:])[0]
    if zlib.crc32(body) != crc:
        raise BitstreamError("overfitted stream: CRC mismatch (truncated or corrupted)")
    magic, version, h, w, cfgb, q, nw, nl = _HEADER.unpack(body[:_HEADER.size])
    if magic != MAGIC or version != VERSION:
        raise BitstreamError(f"overfitted stream: bad magic {magic!r} or version {version}")
    if len(body) != _HEADER.size + nw + nl:
        raise BitstreamError("overfitted stream: payload lengths do not match the stream size")
    cfg = OverfitConfig.from_bytes(cfgb)
    if cfg.cond_channels and cond_image is None:
        raise BitstreamError("overfitted stream is conditioned on the first image: pass it to decode")
    arm, synth = build_arm(cfg), build_synth(cfg)
    decode_weights(body[_HEADER.size:_HEADER.size + nw], arm, synth, q)
    dec = ExactDecoder(cfg, arm, synth)
    shapes = level_shapes(h, w, cfg.levels)
    conds = cond_features(_to_tensor_image(cond_image), shapes) if cfg.cond_channels else None
    cdfs, lengths, offsets = cdf_tables()
    rans = RansDecoder()
    rans.set_stream(body[_HEADER.size + nw:])
    ys_fixed: list[torch.Tensor | None] = [None] * cfg.levels
    for l in _levels_order(cfg):
        shape = shapes[l]
        coarse = dec.up2(ys_fixed[l + 1], shape) if l + 1 < cfg.levels else torch.zeros(1, 1, *shape, dtype=torch.float64)
        cond = conds[l] if conds else None
        m = checkerboard(*shape)
        y = torch.zeros(shape, dtype=torch.float64)
        for pass_b in (False, True):
            inp = dec.arm_inputs(y[None, None] * 2.0 ** FIXED * m if pass_b else None, coarse, cond, shape)
            params = dec.arm.run(inp)[0].permute(1, 2, 0)
            sel = ~m if pass_b else m
            idx, base = select(params[sel])
            vals = torch.tensor(rans.decode_stream(idx.tolist(), cdfs, lengths, offsets), dtype=torch.int64)
            y[sel] = (vals + base).clamp(-int(LATENT_LIMIT), int(LATENT_LIMIT)).double()
        ys_fixed[l] = y[None, None] * 2.0 ** FIXED
    recon = dec.synthesise(ys_fixed, shapes, conds[0] if conds else None)
    return recon[..., 0] if cfg.out_channels == 1 else recon
