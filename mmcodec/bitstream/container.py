"""The `.mmc` container: one file per coded pair (specified in docs/bitstream.md).

Layout (integers big-endian, `varint` = unsigned LEB128):

    magic        4 bytes   b"\\x89MMC"
    version      u16       FORMAT_VERSION
    header_len   u16       length of the header that follows
    header       binary    model name, weights hash, quality, per-modality geometry,
                           bit depth, value range, reconstruction CRC (and, versions 9-16, latent
                           CRC) and stream part lengths; tiled versions add the synthesis tiling
                           (tile size, halo), effort versions the encoder effort
    payload      bytes     every stream part of every modality in header order, then side info
    crc32        u32       over everything before it

The header is binary rather than JSON because it is paid for in every file: at 0.1 bpp a
640x480 image costs under 4 kB, and a JSON header would add several percent.
Everything a decoder needs to refuse a file is checked in `unpack` before any model runs:
magic, version, CRC, header fields and their bounds, and that the lengths add up.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from mmcodec.errors import BitstreamError
from mmcodec.bitstream.layout import LATENT_STRIDE, MAX_HALO_LATENTS, MAX_TILE, MIN_TILE, Tiling

MAGIC = b"\x89MMC"
# Two independent properties make the version, 1 + tiled + 2 * exact:
#   tiled: the header carries the synthesis tiling (versions 2 and 4);
#   exact: every latent codec of the model that has an integer entropy-parameter path
#          (mmcodec.layers.integer) used it (versions 3 and 4); versions 1 and 2 were coded
#          with the float path, which this mmcodec still decodes.
# A writer uses the lowest version that describes its stream, so models without an integer
# path (CCEM, RGB-D TCM) still write versions 1 and 2, readable by older mmcodec; a stream an
# older mmcodec would decode wrongly has a version it refuses with "upgrade mmcodec".
#   effort: the encoder refined the latents (mmcodec.refine) and the header records the
#          effort level in one byte after the tiling fields (versions 5-8 = 1-4 + 4). The
#          decoder does not need it: it is there for `mmcodec info`. Effort-0 files keep
#          versions 1-4, byte for byte as before.
#   latent CRC: every modality record also carries a CRC-32 of the decoded latent, sealed to
#          the rest of the header and the side information (`latent_seal`), after its recon
#          CRC (versions 9-16 = 1-8 + 8). A decoder then tells "latents exact, float synthesis
#          rounded differently" (a warning; refused with strict) from a corrupted or
#          desynchronised stream (an error). Files without it (versions 1-8) decode as before:
#          a reconstruction CRC mismatch stays an error.
FORMAT_VERSION = 16         # newest version this mmcodec reads and writes
UNTILED_VERSION = 1
_TILING = struct.Struct(">HB")            # versions 2 and 4: tile side (latents), halo (latents)
_PREFIX = struct.Struct(">4sHH")
_MODALITY = struct.Struct(">BIIBBBHHI")  # id, height, width, channels, bit depth, flags, lo, hi, recon crc
_LATENT_CRC = struct.Struct(">I")         # versions 9-16: after the recon crc of each modality record
FLAG_HOLES = 0x01                         # 0 = missing pixel (depth); see data.images.HOLE_FLOOR
# A grey visible image coded by the model's single-channel (infrared) codec
# (SeparateCoding.grey_visible_view); only on an rgb record with channels 1.
FLAG_GREY_VIA_IR = 0x02
MAX_SIDE = 1 << 20          # side info is small by design
MAX_DIM = 1 << 16           # pixels per side
MAX_PIXELS = 1 << 28        # per image; refused before anything is allocated
# What a decoder allocates by default at most: the sum over a stream's modalities of
# height * width (a pair of 8192 x 8192 images). `max_pixels` / `--max-pixels` changes it;
# 0 leaves only the format's own bounds (MAX_DIM, MAX_PIXELS per image).
DEFAULT_MAX_PIXELS = 1 << 27
MAX_PARTS = 64
MODALITY_NAMES = ("rgb", "ir", "depth")
MAX_EFFORT = 15             # effort levels a header may name (mmcodec.refine defines 0-3)


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
    holes: bool = False       # zero marks missing pixels (depth)
    latent_crc: int | None = None   # CRC32 of the decoded latent, sealed (versions 9-16; None before)
    grey_via_ir: bool = False        # a grey visible image coded by the infrared codec (FLAG_GREY_VIA_IR)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "height": self.height, "width": self.width,
                "channels": self.channels, "bit_depth": self.bit_depth,
                "range": list(self.value_range), "recon_crc": self.recon_crc, "holes": self.holes,
                "latent_crc": self.latent_crc, "grey_via_ir": self.grey_via_ir}


@dataclass
class Container:
    model: str
    weights: str              # 16 hex digits: short hash of the model's weights file
    quality: int
    modalities: list[StreamInfo]
    streams: dict[str, list[bytes]]   # modality -> its byte strings (latent, hyper-latent, ...)
    side: bytes = b""                 # model side information (e.g. Lu et al.'s gamma/beta)
    tiling: Tiling | None = None      # how the synthesis is tiled; None = whole image
    exact_params: bool = False        # integer entropy parameters (versions 3 and 4)
    effort: int = 0                   # encoder effort (mmcodec.refine); > 0 in versions 5-8

    @property
    def latent_crcs(self) -> bool:
        """Whether the modality records carry latent CRCs (versions 9-16): all of them or none."""
        return any(m.latent_crc is not None for m in self.modalities)

    @property
    def version(self) -> int:
        return format_version(self.tiling is not None, self.exact_params, self.effort > 0, self.latent_crcs)

    @property
    def pixels(self) -> int:
        """What the header asks a decoder to make: the sum of height * width over the modalities."""
        return sum(m.height * m.width for m in self.modalities)

    def stream_bytes(self) -> dict[str, int]:
        return {m: sum(len(p) for p in parts) for m, parts in self.streams.items()}

    def info(self, total_bytes: int) -> dict[str, Any]:
        """Summary for `mmcodec info`: sizes, bytes per stream and bits per pixel (of each
        modality over its own pixels; of the pair over the largest image's pixels, which are
        every image's pixels for a same-size pair)."""
        pixels = max(m.height * m.width for m in self.modalities)
        sizes = self.stream_bytes()
        return {
            "model": self.model, "weights": self.weights, "quality": self.quality,
            "format_version": self.version, "exact_entropy_parameters": self.exact_params,
            "effort": self.effort, "latent_crcs": self.latent_crcs, "pixels": self.pixels,
            "tiling": None if self.tiling is None else {"tile_pixels": self.tiling.tile_pixels,
                                                        "halo_pixels": self.tiling.halo_pixels},
            "modalities": [m.to_json() for m in self.modalities],
            "stream_bytes": sizes, "side_bytes": len(self.side), "total_bytes": total_bytes,
            "overhead_bytes": total_bytes - sum(sizes.values()) - len(self.side),
            "bpp": {m.name: 8.0 * sizes[m.name] / (m.height * m.width) for m in self.modalities},
            "pair_bpp": 8.0 * total_bytes / pixels,
        }


def format_version(tiled: bool, exact_params: bool, effort_recorded: bool = False, latent_crcs: bool = False) -> int:
    return UNTILED_VERSION + int(tiled) + 2 * int(exact_params) + 4 * int(effort_recorded) + 8 * int(latent_crcs)


def _version_properties(version: int) -> tuple[bool, bool, bool, bool]:
    """(tiled, exact_params, effort_recorded, latent_crcs) of a format version."""
    bits = version - UNTILED_VERSION
    return bool(bits & 1), bool(bits & 2), bool(bits & 4), bool(bits & 8)


def check_pixel_budget(c: Container, max_pixels: int | None) -> None:
    """Refuse a stream whose images add up to more than `max_pixels` pixels (None or 0: no
    bound beyond the format's), before a decoder allocates anything for it."""
    if max_pixels and c.pixels > max_pixels:
        sizes = " + ".join(f"{m.name} {m.width}x{m.height}" for m in c.modalities)
        raise BitstreamError(f"stream asks for {c.pixels} pixels ({sizes}), over the decoder's limit of "
                             f"{max_pixels} (raise it with --max-pixels / max_pixels=)")


def latent_seal(c: Container, modality: str, side: bytes = b"") -> int:
    """CRC-32 of everything besides its latent that decides what a decoder outputs for
    `modality`: the prefix and header as `pack` would write them for a stream of this modality
    alone with `side`, the side information its codec reads (Lu et al.'s current modality:
    all of it; b"" for every other codec), with its recon and latent CRCs set to zero (model,
    weights, quality, its geometry, value range and part lengths, the length of `side`,
    tiling, effort), then `side` itself. The modality's latent CRC continues from this value
    (mmcodec.codec), so a matching latent CRC also means these fields are the encoder's: what
    remains free is only the float rounding of the synthesis. Other modalities' records are
    left out (`--only` decodes a modality whatever they hold); a cross-modal model decodes,
    and so checks, every modality it reads."""
    record = next(m for m in c.modalities if m.name == modality)
    alone = Container(c.model, c.weights, c.quality, [record], {modality: c.streams.get(modality, [])}, side,
                      c.tiling, c.exact_params, c.effort)
    header = _header(alone, sealed=True)
    return zlib.crc32(side, zlib.crc32(_PREFIX.pack(MAGIC, c.version, len(header)) + header)) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Bounds-checked reads; any overrun is a corrupted `what` (the header, by default)."""

    def __init__(self, data: bytes, what: str = "header") -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"corrupted {self.what}: field runs past its end")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise BitstreamError(f"corrupted {self.what}: length field too long")


def _header(c: Container, sealed: bool = False) -> bytes:
    """The header bytes of `c`; `sealed`: with the recon and latent CRCs zeroed (`latent_seal`)."""
    latent_crcs = c.latent_crcs
    if latent_crcs and any(m.latent_crc is None for m in c.modalities):
        raise ValueError("latent CRCs are given for some modalities only")
    name = c.model.encode("utf-8")
    hdr = bytearray([len(name)]) + name + bytes.fromhex(c.weights) + bytes([c.quality, len(c.modalities)])
    for m in c.modalities:
        parts = c.streams.get(m.name, [])
        hdr += _MODALITY.pack(MODALITY_NAMES.index(m.name), m.height, m.width, m.channels, m.bit_depth,
                              (FLAG_HOLES if m.holes else 0) | (FLAG_GREY_VIA_IR if m.grey_via_ir else 0),
                              m.value_range[0], m.value_range[1],
                              0 if sealed else m.recon_crc)
        if latent_crcs:
            hdr += _LATENT_CRC.pack(0 if sealed else m.latent_crc)
        hdr += bytes([len(parts)]) + b"".join(_varint(len(p)) for p in parts)
    hdr += _varint(len(c.side))
    if c.tiling is not None:  # tiling fields follow every version-1 field
        hdr += _TILING.pack(c.tiling.tile, c.tiling.halo)
    if c.effort:
        hdr += bytes([c.effort])
    return bytes(hdr)


def pack(c: Container) -> bytes:
    hdr = _header(c)
    body = bytearray(_PREFIX.pack(MAGIC, c.version, len(hdr))) + hdr
    for m in c.modalities:
        for part in c.streams.get(m.name, []):
            body += part
    body += c.side
    body += struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(body)


def unpack(data: bytes, max_pixels: int | None = None) -> Container:
    """Parse and validate a .mmc file; raise BitstreamError with a one-line reason.
    `max_pixels`: also refuse a valid stream whose images add up to more pixels
    (`check_pixel_budget`; None: the format's bounds only)."""
    if not data:
        raise BitstreamError("empty file, not an mmcodec stream")
    if data[:4] != MAGIC[:len(data[:4])]:
        raise BitstreamError("not an mmcodec file (bad magic)")
    if len(data) < _PREFIX.size + 4:
        raise BitstreamError(f"truncated stream ({len(data)} bytes)")
    _, version, hlen = _PREFIX.unpack_from(data)
    if not UNTILED_VERSION <= version <= FORMAT_VERSION:
        raise BitstreamError(
            f"unsupported format version {version}: this mmcodec reads versions {UNTILED_VERSION}-{FORMAT_VERSION}"
            + ("; upgrade mmcodec" if version > FORMAT_VERSION else ""))
    if len(data) < _PREFIX.size + hlen + 4:
        raise BitstreamError(f"truncated stream ({len(data)} bytes, the header alone needs {_PREFIX.size + hlen + 4})")
    crc_ok = zlib.crc32(data[:-4]) & 0xFFFFFFFF == struct.unpack(">I", data[-4:])[0]
    try:
        container, parts, side_len = _parse_header(data[_PREFIX.size:_PREFIX.size + hlen], version)
    except BitstreamError:
        if not crc_ok:
            raise BitstreamError("corrupted stream (CRC mismatch)") from None
        raise
    expected = _PREFIX.size + hlen + sum(sum(p) for p in parts.values()) + side_len + 4
    if len(data) < expected:
        raise BitstreamError(f"truncated stream ({len(data)} of {expected} bytes)")
    if len(data) > expected:
        raise BitstreamError(f"corrupted stream ({len(data) - expected} unexpected trailing bytes)")
    if not crc_ok:
        raise BitstreamError("corrupted stream (CRC mismatch)")
    check_pixel_budget(container, max_pixels)
    pos = _PREFIX.size + hlen
    for m in container.modalities:
        for n in parts[m.name]:
            container.streams[m.name].append(data[pos:pos + n])
            pos += n
    container.side = data[pos:pos + side_len]
    return container


def _parse_header(raw: bytes, version: int) -> tuple[Container, dict[str, list[int]], int]:
    r = _Reader(raw)
    try:
        model = r.take(r.take(1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("corrupted header: model name") from None
    weights = r.take(8).hex()
    quality, count = r.take(1)[0], r.take(1)[0]
    if not 1 <= count <= len(MODALITY_NAMES):
        raise BitstreamError(f"corrupted header: {count} modalities")
    tiled, exact, effort_recorded, latent_crcs = _version_properties(version)
    mods: list[StreamInfo] = []
    parts: dict[str, list[int]] = {}
    for _ in range(count):
        mid, hh, ww, ch, bd, flags, lo, hi, crc = _MODALITY.unpack(r.take(_MODALITY.size))
        latent_crc = _LATENT_CRC.unpack(r.take(_LATENT_CRC.size))[0] if latent_crcs else None
        if flags & ~(FLAG_HOLES | FLAG_GREY_VIA_IR):
            raise BitstreamError(f"corrupted header: unknown flags {flags:#04x}")
        if mid >= len(MODALITY_NAMES) or MODALITY_NAMES[mid] in parts:
            raise BitstreamError("corrupted header: modality id")
        name = MODALITY_NAMES[mid]
        if flags & FLAG_GREY_VIA_IR and (name != "rgb" or ch != 1):
            raise BitstreamError(f"corrupted header: {name} record with channels {ch} marked as a grey visible image")
        if not (1 <= hh <= MAX_DIM and 1 <= ww <= MAX_DIM and hh * ww <= MAX_PIXELS):
            raise BitstreamError(f"corrupted header: image size {ww}x{hh} out of range")
        if ch not in (1, 3) or bd not in (8, 16) or not lo < hi <= (1 << bd) - 1:
            raise BitstreamError(f"corrupted header: channels {ch}, bit depth {bd}, range {lo}..{hi}")
        n_parts = r.take(1)[0]
        if n_parts > MAX_PARTS:
            raise BitstreamError("corrupted header: too many stream parts")
        parts[name] = [r.varint() for _ in range(n_parts)]
        mods.append(StreamInfo(name, hh, ww, ch, bd, (lo, hi), crc, bool(flags & FLAG_HOLES), latent_crc,
                               bool(flags & FLAG_GREY_VIA_IR)))
    side_len = r.varint()
    if side_len > MAX_SIDE:
        raise BitstreamError("corrupted header: side information length out of range")
    tiling = None
    if tiled:
        tile, halo = _TILING.unpack(r.take(_TILING.size))
        # Bounds keep a crafted stream's decoding work near the whole image's (halo <= tile).
        if not (MIN_TILE // LATENT_STRIDE <= tile <= MAX_TILE // LATENT_STRIDE and halo <= min(tile, MAX_HALO_LATENTS)):
            raise BitstreamError(f"corrupted header: tile {tile}, halo {halo} latents out of range")
        tiling = Tiling(tile, halo)
    effort = 0
    if effort_recorded:
        effort = r.take(1)[0]
        if not 1 <= effort <= MAX_EFFORT:
            raise BitstreamError(f"corrupted header: effort {effort} out of range")
    if r.pos != len(raw):
        raise BitstreamError("corrupted header: unexpected trailing header bytes")
    return (Container(model, weights, quality, mods, {m.name: [] for m in mods}, tiling=tiling, exact_params=exact,
                      effort=effort), parts, side_len)
