"""The .mmc container: exact round trip and refusal of damaged files."""
import struct
import zlib

import pytest

from mmcodec.bitstream import Container, StreamInfo, pack, unpack
from mmcodec.bitstream.container import MAGIC
from mmcodec.errors import BitstreamError


def sample() -> Container:
    mods = [StreamInfo("rgb", 480, 640, 3, 8, (0, 255), 123), StreamInfo("ir", 480, 640, 1, 16, (1000, 30000), 7)]
    return Container("ir-vi/separate", "0123456789abcdef", 3, mods,
                     {"rgb": [b"yyy", b"zz"], "ir": [b"a" * 300, b""]}, side=b"\x01\x02")


def test_round_trip_preserves_everything():
    c = sample()
    d = unpack(pack(c))
    assert (d.model, d.weights, d.quality, d.side) == (c.model, c.weights, c.quality, c.side)
    assert d.streams == c.streams
    assert [m.to_json() for m in d.modalities] == [m.to_json() for m in c.modalities]


def test_header_is_compact():
    blob = pack(sample())
    assert len(blob) - (3 + 2 + 300 + 2) < 100  # fixed cost per file stays under 100 bytes


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"", "empty"),
    (lambda b: b"GIF89a" + b[6:], "bad magic"),
    (lambda b: b[:-10], "truncated"),
    (lambda b: b[:5], "truncated"),
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b[:-20] + bytes([b[-20] ^ 1]) + b[-19:], "CRC"),
    (lambda b: b[:4] + struct.pack(">H", 9) + b[6:], "upgrade mmcodec"),
])
def test_damaged_files_are_refused(mutate, message):
    with pytest.raises(BitstreamError, match=message):
        unpack(mutate(pack(sample())))


def test_huge_dimensions_refused_before_allocation():
    c = sample()
    c.modalities[0].height = 1_000_000
    with pytest.raises((BitstreamError, struct.error, OverflowError)):
        blob = pack(c)
        unpack(blob)
    # A crafted header with a valid CRC claiming 65536 x 65536 (over the pixel cap).
    c = sample()
    c.modalities[0].height = c.modalities[0].width = 65536
    blob = pack(c)
    with pytest.raises(BitstreamError, match="out of range"):
        unpack(blob)


def test_crc_covers_the_payload():
    blob = bytearray(pack(sample()))
    blob[-8] ^= 0x40  # inside the last payload part
    with pytest.raises(BitstreamError, match="CRC"):
        unpack(bytes(blob))
    # re-sealing with a fresh CRC makes it parse again: the CRC is what caught it
    body = bytes(blob[:-4])
    assert unpack(body + struct.pack(">I", zlib.crc32(body))).streams != sample().streams
    assert MAGIC == b"\x89MMC"
