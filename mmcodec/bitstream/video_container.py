"""The `.mmv` container: one file per coded visible + infrared video (docs/bitstream.md, Video).

Layout (integers big-endian, `varint` = unsigned LEB128):

    magic        4 bytes   b"\\x89MMV"
    version      u16       VIDEO_FORMAT_VERSION
    header_len   u32       length of the header that follows
    header       binary    video model name + weights hash, I-frame model name + weights hash,
                           quality, GOP, frame count, height, width, modality order, then the
                           frame index: for every frame and modality its record's size (varint)
                           and CRC-32
    header_crc   u32       CRC-32 of magic .. header
    records      bytes     frame 0 modality 0, frame 0 modality 1, frame 1 modality 0, ...

Frame i is an I-frame when i % GOP == 0. An I-frame record is a one-modality `.mmc` stream
(mmcodec.bitstream.container) of the image pair codec; a P-frame record is
`recon_crc u32 | part count u8 | varint part lengths | parts` (`pack_p_record`); part count 0
marks a skipped P-frame (the previous decoded frame repeated).
Every record has its own CRC in the index, so a decoder that outputs the infrared video only
reads, checks and decodes the infrared records, and a damaged file is refused naming the first
bad frame. Reading needs neither torch nor numpy.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from mmcodec.errors import BitstreamError
from mmcodec.bitstream.container import _Reader as _HeaderReader, _varint

VIDEO_MAGIC = b"\x89MMV"
VIDEO_FORMAT_VERSION = 1
MAX_FRAMES = 1 << 20
MAX_GOP = (1 << 16) - 1        # u16
MAX_DIM = 1 << 16
MAX_RECORD = 1 << 28            # bytes per record: far above any frame at any quality
MAX_P_PARTS = 16
SKIPPED_RECORD_BYTES = 5          # recon CRC u32 + part count 0
VIDEO_MODALITIES = ("ir", "rgb")  # the coding order (Lu2022 codes infrared first)
_PREFIX = struct.Struct(">4sHI")
_GEOMETRY = struct.Struct(">BHIII")   # quality, gop, frame count, height, width
_CRC = struct.Struct(">I")


@dataclass
class VideoContainer:
    model: str
    weights: str                     # 16 hex digits
    iframe_model: str
    iframe_weights: str              # 16 hex digits
    quality: int
    gop: int
    height: int
    width: int
    modalities: tuple[str, ...] = VIDEO_MODALITIES
    records: list[dict[str, bytes]] = field(default_factory=list)   # per frame: modality -> record
    sizes: list[dict[str, int]] = field(default_factory=list)       # from the index (unpack)

    @property
    def frames(self) -> int:
        return len(self.sizes) if self.sizes else len(self.records)

    def is_intra(self, frame: int) -> bool:
        return frame % self.gop == 0

    def info(self, total_bytes: int) -> dict[str, Any]:
        """Summary for `mmcodec info`: bytes per frame and modality, bpp (from record bytes
        per modality over its pixels; the pair's from the whole file over one frame's pixels)."""
        sizes = self.sizes or [{m: len(r[m]) for m in self.modalities} for r in self.records]
        pixels = self.height * self.width * self.frames
        per_mod = {m: sum(s[m] for s in sizes) for m in self.modalities}
        intra = [i for i in range(self.frames) if self.is_intra(i)]
        inter = [i for i in range(self.frames) if not self.is_intra(i)]

        def mean_bytes(idx: list[int], m: str) -> float | None:
            return sum(sizes[i][m] for i in idx) / len(idx) if idx else None
        return {
            "format": "mmv", "format_version": VIDEO_FORMAT_VERSION, "model": self.model, "weights": self.weights,
            "iframe_model": self.iframe_model, "iframe_weights": self.iframe_weights, "quality": self.quality,
            "gop": self.gop, "frames": self.frames, "width": self.width, "height": self.height,
            "frame_types": "".join("I" if self.is_intra(i) else "P" for i in range(self.frames)),
            "bytes_per_frame": [dict(s) for s in sizes], "stream_bytes": per_mod, "total_bytes": total_bytes,
            "overhead_bytes": total_bytes - sum(per_mod.values()),
            "bpp": {m: 8.0 * per_mod[m] / pixels for m in self.modalities},
            "pair_bpp": 8.0 * total_bytes / pixels,
            "mean_bytes": {"I": {m: mean_bytes(intra, m) for m in self.modalities},
                           "P": {m: mean_bytes(inter, m) for m in self.modalities}},
            # A skipped P-frame's record is its CRC and a zero part count, nothing else.
            "skipped_p_frames": {m: sum(sizes[i][m] == SKIPPED_RECORD_BYTES for i in inter) for m in self.modalities},
        }


class _Reader(_HeaderReader):
    """The .mmc header reader, plus the video header's model name."""

    def name(self) -> str:
        try:
            return self.take(self.take(1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"corrupted {self.what}: model name") from None


def _name(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"model name too long: {s!r}")
    return bytes([len(raw)]) + raw


def pack_video(c: VideoContainer) -> bytes:
    if not 1 <= c.gop <= MAX_GOP or not 1 <= len(c.records) <= MAX_FRAMES:
        raise ValueError(f"gop {c.gop} / {len(c.records)} frames out of the format's range")
    hdr = bytearray(_name(c.model) + bytes.fromhex(c.weights) + _name(c.iframe_model) + bytes.fromhex(c.iframe_weights))
    hdr += _GEOMETRY.pack(c.quality, c.gop, len(c.records), c.height, c.width)
    hdr += bytes([len(c.modalities)]) + bytes(VIDEO_MODALITIES.index(m) for m in c.modalities)
    body = bytearray()
    for frame in c.records:
        for m in c.modalities:
            rec = frame[m]
            if len(rec) > MAX_RECORD:
                raise ValueError("record larger than the format allows")
            hdr += _varint(len(rec)) + _CRC.pack(zlib.crc32(rec) & 0xFFFFFFFF)
            body += rec
    head = _PREFIX.pack(VIDEO_MAGIC, VIDEO_FORMAT_VERSION, len(hdr)) + bytes(hdr)
    return head + _CRC.pack(zlib.crc32(head) & 0xFFFFFFFF) + bytes(body)


def is_video_stream(data: bytes) -> bool:
    return data[:4] == VIDEO_MAGIC


def unpack_video(data: bytes, need: tuple[str, ...] | None = None) -> VideoContainer:
    """Parse and validate a `.mmv` file; the records of the modalities in `need` (all: None)
    are CRC-checked and returned, the others are left out unread. Raises BitstreamError with
    a one-line reason naming the first bad frame."""
    if not data:
        raise BitstreamError("empty file, not an mmcodec video stream")
    if data[:4] != VIDEO_MAGIC[:len(data[:4])]:
        raise BitstreamError("not an mmcodec video file (bad magic)")
    if len(data) < _PREFIX.size + _CRC.size:
        raise BitstreamError(f"truncated video stream ({len(data)} bytes)")
    _, version, hlen = _PREFIX.unpack_from(data)
    if version != VIDEO_FORMAT_VERSION:
        raise BitstreamError(f"unsupported video format version {version}: this mmcodec reads version "
                             f"{VIDEO_FORMAT_VERSION}" + ("; upgrade mmcodec" if version > VIDEO_FORMAT_VERSION else ""))
    end = _PREFIX.size + hlen
    if len(data) < end + _CRC.size:
        raise BitstreamError(f"truncated video stream ({len(data)} bytes, the header alone needs {end + _CRC.size})")
    if zlib.crc32(data[:end]) & 0xFFFFFFFF != _CRC.unpack_from(data, end)[0]:
        raise BitstreamError("corrupted video header (CRC mismatch)")
    r = _Reader(data[_PREFIX.size:end], "video header")
    model, weights = r.name(), r.take(8).hex()
    iframe_model, iframe_weights = r.name(), r.take(8).hex()
    quality, gop, frames, height, width = _GEOMETRY.unpack(r.take(_GEOMETRY.size))
    if not (1 <= gop <= MAX_GOP and 1 <= frames <= MAX_FRAMES and 1 <= height <= MAX_DIM and 1 <= width <= MAX_DIM):
        raise BitstreamError(f"corrupted video header: gop {gop}, {frames} frames, size {width}x{height} out of range")
    count = r.take(1)[0]
    ids = r.take(count)
    if count != len(VIDEO_MODALITIES) or sorted(ids) != list(range(count)):
        raise BitstreamError("corrupted video header: modalities")
    modalities = tuple(VIDEO_MODALITIES[i] for i in ids)
    sizes: list[dict[str, int]] = []
    crcs: list[dict[str, int]] = []
    for _ in range(frames):
        s, c = {}, {}
        for m in modalities:
            s[m] = r.varint()
            if s[m] > MAX_RECORD:
                raise BitstreamError(f"corrupted video header: frame {len(sizes)} record size out of range")
            c[m] = _CRC.unpack(r.take(_CRC.size))[0]
        sizes.append(s)
        crcs.append(c)
    if r.pos != hlen:
        raise BitstreamError("corrupted video header: unexpected trailing header bytes")
    pos = end + _CRC.size
    expected = pos + sum(sum(s.values()) for s in sizes)
    records: list[dict[str, bytes]] = []
    wanted = modalities if need is None else tuple(m for m in modalities if m in need)
    for i in range(frames):
        frame = {}
        for m in modalities:
            n = sizes[i][m]
            if pos + n > len(data):
                raise BitstreamError(f"truncated video stream: frame {i} ({m}) is cut off "
                                     f"({len(data)} of {expected} bytes)")
            if m in wanted:
                rec = data[pos:pos + n]
                if zlib.crc32(rec) & 0xFFFFFFFF != crcs[i][m]:
                    raise BitstreamError(f"corrupted video stream: frame {i} ({m}) fails its CRC")
                frame[m] = rec
            pos += n
        records.append(frame)
    if len(data) > expected:
        raise BitstreamError(f"corrupted video stream ({len(data) - expected} unexpected trailing bytes)")
    return VideoContainer(model, weights, iframe_model, iframe_weights, quality, gop, height, width, modalities,
                          records, sizes)


def pack_p_record(recon_crc: int, parts: list[bytes]) -> bytes:
    if len(parts) > MAX_P_PARTS:
        raise ValueError("too many stream parts")
    return _CRC.pack(recon_crc) + bytes([len(parts)]) + b"".join(_varint(len(p)) for p in parts) + b"".join(parts)


def unpack_p_record(record: bytes, frame: int, modality: str) -> tuple[int, list[bytes]]:
    """(recon CRC, stream parts) of a P-frame record."""
    r = _Reader(record, f"P-frame record (frame {frame}, {modality})")
    crc = _CRC.unpack(r.take(_CRC.size))[0]
    n = r.take(1)[0]
    if n > MAX_P_PARTS:
        raise BitstreamError(f"corrupted P-frame record (frame {frame}, {modality}): {n} parts")
    lengths = [r.varint() for _ in range(n)]
    parts = [r.take(k) for k in lengths]
    if r.pos != len(record):
        raise BitstreamError(f"corrupted P-frame record (frame {frame}, {modality}): trailing bytes")
    return crc, parts
