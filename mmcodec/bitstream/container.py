"""The `.mmc` container: one file per coded pair.

Layout (all integers big-endian):

    magic        4 bytes   b"\\x89MMC"
    version      u16       FORMAT_VERSION
    header_len   u32       length of the JSON header
    header       JSON      model, weights hash, quality, modalities, stream part lengths, ...
    payload      bytes     every stream part of every modality in header order, then side info
    crc32        u32       over everything before it

Everything a decoder needs to refuse a file is checked in `unpack` before any model runs:
magic, version, CRC, header fields and their bounds, and that the lengths add up.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from mmcodec.errors import BitstreamError

MAGIC = b"\x89MMC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sHI")
MAX_HEADER = 1 << 16
MAX_SIDE = 1 << 20          # image-size-independent: side info is small by design
MAX_DIM = 1 << 16           # pixels per side
MAX_PIXELS = 1 << 28        # per image; refuse before allocating anything
MODALITY_NAMES = ("rgb", "ir", "depth")


@dataclass
class StreamInfo:
    """What the header says about one modality."""

    name: str
    height: int
    width: int
    channels: int
    bit_depth: int
    value_range: tuple[int, int]
    recon_crc: int            # CRC32 of the encoder-side reconstruction, to detect desync

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "height": self.height, "width": self.width,
                "channels": self.channels, "bit_depth": self.bit_depth,
                "range": list(self.value_range), "recon_crc": self.recon_crc}


@dataclass
class Container:
    model: str
    weights: str              # short hash of the model's weights file
    quality: int
    modalities: list[StreamInfo]
    streams: dict[str, list[bytes]]   # modality -> its byte strings (latent, hyper-latent, ...)
    side: bytes = b""                 # model side information (e.g. Lu et al.'s gamma/beta)
    extra: dict[str, Any] = field(default_factory=dict)

    def stream_bytes(self) -> dict[str, int]:
        return {m: sum(len(p) for p in parts) for m, parts in self.streams.items()}

    def info(self, total_bytes: int) -> dict[str, Any]:
        """Summary for `mmcodec info`: sizes, bytes per stream and bits per pixel."""
        pixels = self.modalities[0].height * self.modalities[0].width
        return {
            "model": self.model, "weights": self.weights, "quality": self.quality,
            "format_version": FORMAT_VERSION,
            "modalities": [m.to_json() for m in self.modalities],
            "stream_bytes": self.stream_bytes(), "side_bytes": len(self.side),
            "total_bytes": total_bytes,
            "bpp": {m.name: 8.0 * self.stream_bytes()[m.name] / (m.height * m.width)
                    for m in self.modalities},
            "pair_bpp": 8.0 * total_bytes / pixels,
        }


def pack(c: Container) -> bytes:
    order = [m.name for m in c.modalities]
    header = {
        "model": c.model, "weights": c.weights, "quality": c.quality,
        "modalities": [m.to_json() for m in c.modalities],
        "parts": {m: [len(p) for p in c.streams.get(m, [])] for m in order},
        "side": len(c.side), "extra": c.extra,
    }
    hdr = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if len(hdr) > MAX_HEADER:
        raise BitstreamError("header too large")
    body = bytearray(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(hdr)))
    body += hdr
    for m in order:
        for part in c.streams.get(m, []):
            body += part
    body += c.side
    body += struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(body)


def unpack(data: bytes) -> Container:
    """Parse and validate a .mmc file; raise BitstreamError with a one-line reason."""
    if len(data) < _PREFIX.size + 4:
        if not MAGIC.startswith(data[:4]) or len(data) == 0:
            raise BitstreamError("not an mmcodec file (bad magic)" if data else "empty file, not an mmcodec stream")
        raise BitstreamError(f"truncated stream ({len(data)} bytes)")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not an mmcodec file (bad magic)")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported format version {version} (this mmcodec reads version {FORMAT_VERSION}); "
                             "upgrade mmcodec" if version > FORMAT_VERSION else
                             f"unsupported format version {version}")
    if hlen > MAX_HEADER:
        raise BitstreamError(f"corrupted header: length {hlen} exceeds {MAX_HEADER}")
    if len(data) < _PREFIX.size + hlen + 4:
        raise BitstreamError(f"truncated stream ({len(data)} bytes, header alone needs {_PREFIX.size + hlen + 4})")
    crc_ok = zlib.crc32(data[:-4]) & 0xFFFFFFFF == struct.unpack(">I", data[-4:])[0]
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BitstreamError("corrupted stream (header unreadable, CRC mismatch)" if not crc_ok
                             else "corrupted header") from None
    try:
        mods, parts, side_len = _validate_header(header)
    except BitstreamError:
        if not crc_ok:
            raise BitstreamError("corrupted stream (CRC mismatch)") from None
        raise
    expected = _PREFIX.size + hlen + sum(sum(p) for p in parts.values()) + side_len + 4
    if len(data) < expected:
        raise BitstreamError(f"truncated stream ({len(data)} of {expected} bytes)")
    if not crc_ok or len(data) != expected:
        raise BitstreamError("corrupted stream (CRC mismatch)" if len(data) == expected
                             else f"corrupted stream ({len(data) - expected} unexpected trailing bytes)")
    pos = _PREFIX.size + hlen
    streams: dict[str, list[bytes]] = {}
    for m in mods:
        streams[m.name] = []
        for n in parts[m.name]:
            streams[m.name].append(data[pos:pos + n])
            pos += n
    side = data[pos:pos + side_len]
    return Container(header["model"], header["weights"], header["quality"], mods, streams, side,
                     header.get("extra", {}))


def _validate_header(h: Any) -> tuple[list[StreamInfo], dict[str, list[int]], int]:
    def bad(why: str) -> BitstreamError:
        return BitstreamError(f"corrupted header: {why}")

    if not isinstance(h, dict):
        raise bad("not an object")
    for key, typ in (("model", str), ("weights", str), ("quality", int), ("modalities", list),
                     ("parts", dict), ("side", int)):
        if not isinstance(h.get(key), typ) or isinstance(h.get(key), bool):
            raise bad(f"field {key!r} missing or of wrong type")
    if not 0 <= h["side"] <= MAX_SIDE:
        raise bad("side information length out of range")
    mods: list[StreamInfo] = []
    parts: dict[str, list[int]] = {}
    if not 1 <= len(h["modalities"]) <= 3:
        raise bad("modality count out of range")
    for m in h["modalities"]:
        if not isinstance(m, dict):
            raise bad("modality entry")
        try:
            name, hh, ww = m["name"], m["height"], m["width"]
            ch, bd, rng, crc = m["channels"], m["bit_depth"], m["range"], m["recon_crc"]
        except KeyError as exc:
            raise bad(f"modality field {exc} missing") from None
        if name not in MODALITY_NAMES or name in parts:
            raise bad(f"modality name {name!r}")
        ints = (hh, ww, ch, bd, crc, *rng) if isinstance(rng, list) and len(rng) == 2 else None
        if ints is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise bad(f"modality {name} fields of wrong type")
        if not (1 <= hh <= MAX_DIM and 1 <= ww <= MAX_DIM and hh * ww <= MAX_PIXELS):
            raise bad(f"image size {ww}x{hh} out of range")
        if ch not in (1, 3) or bd not in (8, 16):
            raise bad(f"channels {ch} / bit depth {bd}")
        if not 0 <= rng[0] < rng[1] <= (1 << bd) - 1:
            raise bad("value range")
        p = h["parts"].get(name)
        if not isinstance(p, list) or len(p) > 64 or not all(isinstance(n, int) and 0 <= n < (1 << 31) for n in p):
            raise bad(f"stream lengths of {name}")
        parts[name] = p
        mods.append(StreamInfo(name, hh, ww, ch, bd, (rng[0], rng[1]), crc))
    if set(h["parts"]) - set(parts):
        raise bad("stream for an unlisted modality")
    return mods, parts, h["side"]
