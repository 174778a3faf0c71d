"""The .mmc container: exact round trip and refusal of damaged files."""
import struct
import subprocess
import sys
import zlib

import pytest

from mmcodec.bitstream import Container, StreamInfo, Tiling, pack, unpack
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
    (lambda b: b[:4] + struct.pack(">H", 17) + b[6:], "upgrade mmcodec"),
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


# -- tiling (format version 2) ---------------------------------------------------------------
def test_untiled_streams_keep_the_version_1_bytes():
    """Whole-image streams are written exactly as before tiling existed (version 1, readable by
    older mmcodec): this CRC is that of the same container packed by the version-1 writer."""
    blob = pack(sample())
    assert struct.unpack(">H", blob[4:6])[0] == 1 and len(blob) == 392
    assert zlib.crc32(blob) == 0x0D843E50


def test_tiling_round_trips_as_version_2():
    c = sample()
    c.tiling = Tiling(64, 2)
    blob = pack(c)
    assert struct.unpack(">H", blob[4:6])[0] == 2 and len(blob) == len(pack(sample())) + 3
    d = unpack(blob)
    assert d.tiling == Tiling(64, 2) and d.streams == c.streams and d.side == c.side
    assert d.info(len(blob))["tiling"] == {"tile_pixels": 1024, "halo_pixels": 32}
    assert d.info(len(blob))["format_version"] == 2 and unpack(pack(sample())).tiling is None


@pytest.mark.parametrize("tiling", [Tiling(3, 0), Tiling(4097, 2), Tiling(8, 9), Tiling(64, 17)])
def test_tiling_fields_out_of_range_are_refused(tiling):
    c = sample()
    c.tiling = tiling  # a well-formed file (valid CRC) with a tiling no encoder writes
    with pytest.raises(BitstreamError, match=f"corrupted header: tile {tiling.tile}, halo {tiling.halo} latents"):
        unpack(pack(c))


def test_version_fields_must_match_the_header():
    c = sample()
    c.tiling = Tiling(64, 2)
    v2 = bytearray(pack(c))
    v2[4:6] = struct.pack(">H", 1)  # a version-2 header labelled version 1: 3 bytes left over
    body = bytes(v2[:-4])
    with pytest.raises(BitstreamError, match="unexpected trailing header bytes"):
        unpack(body + struct.pack(">I", zlib.crc32(body)))
    v1 = bytearray(pack(sample()))
    v1[4:6] = struct.pack(">H", 2)  # a version-1 header labelled version 2: the tiling is missing
    body = bytes(v1[:-4])
    with pytest.raises(BitstreamError, match="corrupted header"):
        unpack(body + struct.pack(">I", zlib.crc32(body)))
    v1[4:6] = struct.pack(">H", 5)  # a version-1 header labelled version 5: the effort byte is missing
    body = bytes(v1[:-4])
    with pytest.raises(BitstreamError, match="corrupted header"):
        unpack(body + struct.pack(">I", zlib.crc32(body)))
    v1[4:6] = struct.pack(">H", 9)  # a version-1 header labelled version 9: the latent CRCs are missing
    body = bytes(v1[:-4])
    with pytest.raises(BitstreamError, match="corrupted header"):
        unpack(body + struct.pack(">I", zlib.crc32(body)))
    v1[4:6] = struct.pack(">H", 17)
    body = bytes(v1[:-4])
    with pytest.raises(BitstreamError, match="version 17: this mmcodec reads versions 1-16; upgrade mmcodec"):
        unpack(body + struct.pack(">I", zlib.crc32(body)))


def test_effort_versions_round_trip():
    """Versions 5-8 are 1-4 with the encoder effort recorded in one trailing header byte."""
    for tiled in (False, True):
        for exact in (False, True):
            c = sample()
            c.tiling, c.exact_params, c.effort = (Tiling(64, 2) if tiled else None), exact, 3
            back = unpack(pack(c))
            assert back.version == 5 + tiled + 2 * exact
            assert (back.effort, back.exact_params, back.tiling) == (3, exact, c.tiling)
            c.effort = 0
            assert unpack(pack(c)).version == 1 + tiled + 2 * exact


def test_version_is_one_plus_tiled_plus_twice_exact():
    """Versions 3 and 4 are 1 and 2 with integer entropy parameters: same fields, and the
    reader gets both properties back from the version alone."""
    for tiled in (False, True):
        for exact in (False, True):
            c = sample()
            c.tiling, c.exact_params = (Tiling(64, 2) if tiled else None), exact
            blob = pack(c)
            assert struct.unpack(">H", blob[4:6])[0] == 1 + tiled + 2 * exact
            back = unpack(blob)
            assert (back.tiling is not None, back.exact_params) == (tiled, exact)
            assert back.streams == c.streams
    c = sample()
    plain, exact = pack(c), pack(Container(**{**c.__dict__, "exact_params": True}))
    assert plain[6:-4] == exact[6:-4]  # only the version differs


# -- latent CRCs (format versions 9-16) -----------------------------------------------------
def with_latent_crcs(c: Container, crcs: tuple[int, ...] = (0xDEADBEEF, 5)) -> Container:
    for m, crc in zip(c.modalities, crcs):
        m.latent_crc = crc
    return c


def test_latent_crc_versions_are_1_to_8_plus_8():
    """Versions 9-16 are 1-8 with one u32 more per modality record, after the recon CRC."""
    for tiled in (False, True):
        for exact in (False, True):
            for effort in (0, 2):
                c = sample()
                c.tiling, c.exact_params, c.effort = (Tiling(64, 2) if tiled else None), exact, effort
                old = pack(c)
                new = pack(with_latent_crcs(c))
                base = 1 + tiled + 2 * exact + 4 * (effort > 0)
                assert struct.unpack(">H", old[4:6])[0] == base and struct.unpack(">H", new[4:6])[0] == base + 8
                assert len(new) == len(old) + 4 * len(c.modalities)
                back = unpack(new)
                assert [m.latent_crc for m in back.modalities] == [0xDEADBEEF, 5]
                assert (back.tiling, back.exact_params, back.effort, back.streams) == (c.tiling, exact, effort,
                                                                                      c.streams)
                assert back.info(len(new))["latent_crcs"] and not unpack(old).info(len(old))["latent_crcs"]
                assert all(m.latent_crc is None for m in unpack(old).modalities)
    blob = pack(with_latent_crcs(sample()))
    assert blob[8 + 1 + len(b"ir-vi/separate") + 8 + 2 + 20:][:4] == struct.pack(">I", 0xDEADBEEF)


def test_latent_crcs_for_some_modalities_only_are_not_written():
    c = sample()
    c.modalities[0].latent_crc = 1
    with pytest.raises(ValueError, match="some modalities only"):
        pack(c)


def test_latent_seal_covers_all_but_the_crcs():
    """The seal a modality's latent CRC starts from: a change of any header field of the stream
    or of that modality, or of the side information its codec reads, changes it; the recon
    and latent CRCs do not, nor do the other modality's fields or side information it does
    not read."""
    from mmcodec.bitstream.container import latent_seal
    seal = latent_seal(with_latent_crcs(sample()), "ir")
    assert latent_seal(with_latent_crcs(sample(), (1, 2)), "ir") == seal != latent_seal(with_latent_crcs(sample()), "rgb")
    c = with_latent_crcs(sample())
    c.modalities[1].recon_crc ^= 1
    c.modalities[0].height, c.streams["rgb"] = 479, [b"y"]   # the other modality's record and parts
    assert latent_seal(c, "ir") == seal
    assert latent_seal(c, "ir", b"\x01\x02") != seal                # the side information it reads
    c.side = b"\x07" * 9                                           # what it does not read
    assert latent_seal(c, "ir") == seal
    changes = [lambda c: setattr(c, "quality", 2),
               lambda c: setattr(c, "tiling", Tiling(64, 2)), lambda c: setattr(c, "effort", 1),
               lambda c: setattr(c, "exact_params", True), lambda c: setattr(c.modalities[1], "height", 479),
               lambda c: setattr(c.modalities[1], "channels", 3), lambda c: setattr(c.modalities[1], "bit_depth", 8),
               lambda c: setattr(c.modalities[1], "value_range", (1000, 30001)),
               lambda c: setattr(c.modalities[1], "holes", True), lambda c: setattr(c, "weights", "0" * 16),
               lambda c: setattr(c, "model", "ir-vi/other"), lambda c: c.streams["ir"].append(b"")]
    for change in changes:
        c = with_latent_crcs(sample())
        change(c)
        assert latent_seal(c, "ir") != seal


def test_pixel_budget_is_checked_before_the_payload_is_split():
    blob = pack(sample())                      # 2 x 640 x 480 = 614400 pixels
    assert unpack(blob, max_pixels=614400).pixels == 614400
    assert unpack(blob, max_pixels=0).modalities and unpack(blob).info(len(blob))["pixels"] == 614400
    with pytest.raises(BitstreamError, match=r"stream asks for 614400 pixels \(rgb 640x480 \+ ir 640x480\), "
                                             r"over the decoder's limit of 614399"):
        unpack(blob, max_pixels=614399)


def test_reading_a_header_imports_no_torch(tmp_path):
    """`mmcodec.bitstream` is the bottom layer: parsing a .mmc needs the standard library only."""
    path = tmp_path / "x.mmc"
    path.write_bytes(pack(sample()))
    code = ("import sys; from mmcodec.bitstream import unpack; "
            f"c = unpack(open({str(path)!r}, 'rb').read()); "
            "print(c.model, 'torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ir-vi/separate", "False", "False"]
