"""Decoder fuzzing (short CI version; `scripts/fuzz_long.py` runs >= 10,000 cases).

Every damaged input must end in an `MMCodecError` (exit code 2 from the CLI) with a one-line
message, quickly, and never in a crash, a hang or a silently wrong image. Inputs are valid
.mmc files that are bit-flipped, overwritten, truncated, extended and spliced, random bytes,
and, to get past the CRC and reach the header parser and the model, the same damage with
the CRC recomputed.
"""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmcodec
from mmcodec.bitstream import Container, pack, unpack
from mmcodec.cli import main
from mmcodec.errors import BitstreamError, MMCodecError

from conftest import smooth_image

torch.set_num_threads(1)  # small images on a shared machine: one thread is fastest
SECONDS_PER_CASE = 5.0    # generous on a loaded CI machine; a tiny decode takes ~50 ms
FUZZ = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def corpus(tiny_model_dir):
    """Valid streams (and what they decode to) from both tiny models, 8- and 16-bit, whole and tiled."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MMCODEC_MODEL_PATH", str(tiny_model_dir))
    ir_vi = mmcodec.load("ir-vi/tiny", quality=2)
    rgb_d = mmcodec.load("rgb-d/tiny", quality=1)
    blobs = [ir_vi.compress(rgb=smooth_image(64, 80, 3, 1), ir=smooth_image(64, 80, 1, 2)),
             ir_vi.compress(rgb=smooth_image(70, 64, 3, 3), ir=smooth_image(70, 64, 1, 4, dtype=np.uint16)),
             rgb_d.compress(rgb=smooth_image(64, 64, 3, 5), depth=smooth_image(64, 64, 1, 6, dtype=np.uint16)),
             # tiled (format version 2): 2 x 2 tiles of 64 px
             mmcodec.load("ir-vi/tiny", quality=1, tile=64).compress(rgb=smooth_image(120, 100, 3, 7),
                                                                      ir=smooth_image(120, 100, 1, 8))]
    decoded = [mmcodec.decompress(b) for b in blobs]
    yield list(zip(blobs, decoded))
    mp.undo()


def with_valid_crc(data: bytes) -> bytes:
    """Replace the last 4 bytes by the CRC of the rest, as a writer would."""
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]) & 0xFFFFFFFF)


def check_decode(data: bytes, corpus) -> None:
    """The oracle: a one-line MMCodecError, or exactly the image the encoder made."""
    start = time.perf_counter()
    try:
        out = mmcodec.decompress(data)
    except MMCodecError as exc:
        msg = str(exc)
        assert isinstance(exc, BitstreamError), f"{type(exc).__name__}: {msg}"
        assert msg and "\n" not in msg and len(msg) < 300, msg
    else:  # accepted: must be byte-identical to a decode of one of the originals
        assert any(out.keys() == ref.keys() and all(np.array_equal(out[m], ref[m]) for m in out)
                   for _, ref in corpus), "a damaged stream decoded to a different image"
    assert time.perf_counter() - start < SECONDS_PER_CASE


# -- damage operators -------------------------------------------------------------------------
# An earlier operator may have deleted every byte: the others then start from one zero byte.
def _flip(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data or b"\x00")
    b[pos % len(b)] ^= 1 << bit
    return bytes(b)


def _overwrite(data: bytes, pos: int, chunk: bytes) -> bytes:
    data = data or b"\x00"
    pos %= len(data)
    return data[:pos] + chunk + data[pos + len(chunk):]


def _delete(data: bytes, pos: int, n: int) -> bytes:
    data = data or b"\x00"
    pos %= len(data)
    return data[:pos] + data[pos + n:]


def _insert(data: bytes, pos: int, chunk: bytes) -> bytes:
    pos %= len(data) + 1
    return data[:pos] + chunk + data[pos:]


positions = st.integers(0, 1 << 16)
damage = st.one_of(
    st.tuples(st.just(_flip), positions, st.integers(0, 7)),
    st.tuples(st.just(_overwrite), positions, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just(_delete), positions, st.integers(1, 64)),
    st.tuples(st.just(_insert), positions, st.binary(min_size=1, max_size=16)),
)


@FUZZ
@given(which=st.integers(0, 3), ops=st.lists(damage, min_size=1, max_size=4), fix_crc=st.booleans())
def test_mutated_streams(corpus, which, ops, fix_crc):
    data = corpus[which][0]
    for op, pos, arg in ops:
        data = op(data, pos, arg)
    check_decode(with_valid_crc(data) if fix_crc else data, corpus)


@FUZZ
@given(which=st.integers(0, 3), cut=st.integers(0, 1 << 16), fix_crc=st.booleans())
def test_truncated_streams(corpus, which, cut, fix_crc):
    data = corpus[which][0]
    data = data[:cut % len(data)]
    check_decode(with_valid_crc(data) if fix_crc else data, corpus)


@FUZZ
@given(a=st.integers(0, 3), b=st.integers(0, 3), i=st.integers(0, 1 << 16), j=st.integers(0, 1 << 16),
       fix_crc=st.booleans())
def test_spliced_streams(corpus, a, b, i, j, fix_crc):
    x, y = corpus[a][0], corpus[b][0]
    data = x[:i % len(x)] + y[j % len(y):]
    check_decode(with_valid_crc(data) if fix_crc else data, corpus)


@FUZZ
@given(data=st.binary(max_size=600), magic=st.sampled_from([None, 1, 2]), fix_crc=st.booleans())
def test_random_bytes(corpus, data, magic, fix_crc):
    if magic:  # get past the first check: magic and a version this mmcodec reads
        data = b"\x89MMC\x00" + bytes([magic]) + data
    check_decode(with_valid_crc(data) if fix_crc else data, corpus)


@FUZZ
@given(which=st.integers(0, 3), part=st.integers(0, 7), ops=st.lists(damage, min_size=1, max_size=3),
       height=st.sampled_from([None, 1, 17, 64, 200]), width=st.sampled_from([None, 1, 33, 64, 256]))
def test_valid_container_with_damaged_payload_reaches_the_model(corpus, which, part, ops, height, width):
    """Well-formed containers (valid CRC, valid header) whose entropy-coded parts are damaged or
    whose geometry is changed: the model runs, and the reconstruction hash must catch it."""
    c = unpack(corpus[which][0])
    names = [m.name for m in c.modalities]
    m = names[part % len(names)]
    k = (part // len(names)) % len(c.streams[m])
    s = c.streams[m][k] or b"\x00"
    for op, pos, arg in ops:
        s = op(s, pos, arg)
    c.streams[m][k] = s
    for info in c.modalities:
        info.height = height or info.height
        info.width = width or info.width
    check_decode(pack(c), corpus)


# -- specific guarantees ----------------------------------------------------------------------
def test_huge_header_fails_fast_without_allocating(corpus):
    """A well-formed header (valid CRC) claiming a 10^6 x 10^6 image is refused before any
    allocation; so is the largest size the container allows when the streams cannot hold it."""
    c = unpack(corpus[0][0])
    for info in c.modalities:
        info.height = info.width = 10 ** 6
    blob = pack(c)
    start = time.perf_counter()
    with pytest.raises(BitstreamError, match="out of range"):
        unpack(blob)
    with pytest.raises(BitstreamError, match="out of range"):
        mmcodec.decompress(blob)
    assert time.perf_counter() - start < 0.5


def test_one_modality_claiming_a_large_size_fails_fast(corpus):
    """Found by scripts/fuzz_long.py: a bit flip (CRC recomputed) turned a height of 70 into
    32838, and the decoder spent minutes on an 19-megapixel image. Pairs are aligned, so a
    header whose modalities differ in size is refused before the model runs."""
    c = unpack(corpus[2][0])
    c.modalities[0].height = 32838
    start = time.perf_counter()
    with pytest.raises(BitstreamError, match="differ in size"):
        mmcodec.decompress(pack(c))
    assert time.perf_counter() - start < 0.5


def test_stream_claiming_more_symbols_than_it_holds_does_not_crash(corpus):
    """CompressAI's rANS decoder reads past the end of a short stream; without the guard in
    mmcodec.bitstream.rans_guard this segfaulted about one time in three."""
    c = unpack(corpus[0][0])
    for info in c.modalities:
        info.height = info.width = 512
    rng = np.random.default_rng(0)
    for trial in range(6):
        for m in c.streams:
            c.streams[m] = [rng.bytes(int(rng.integers(0, 24))) for _ in c.streams[m]]
        with pytest.raises(BitstreamError, match="does not match the encoder|not finite"):
            mmcodec.decompress(pack(c))


@pytest.mark.parametrize("damage_kind", ["truncate", "flip_header", "flip_payload_fixed_crc", "random"])
def test_damage_through_cli_in_process(corpus, tmp_path, capsys, damage_kind):
    data = corpus[0][0]
    damaged = {
        "truncate": data[:len(data) // 2],
        "flip_header": _flip(data, 8, 3),
        "flip_payload_fixed_crc": with_valid_crc(_flip(data, len(data) - 12, 5)),
        "random": bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
    }[damage_kind]
    path = tmp_path / "bad.mmc"
    path.write_bytes(damaged)
    for args in (["decompress", path, "-o", tmp_path / "out"], ["info", path]):
        if damage_kind == "flip_payload_fixed_crc" and args[0] == "info":
            continue  # a well-formed container: info has nothing to refuse
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("mmcodec: error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_damage_through_cli_subprocess(cli, corpus, tmp_path):
    """A few cases through the real command: exit code 2, one line, no traceback."""
    data = corpus[0][0]
    cases = {"truncated.mmc": data[:-7], "bitflip.mmc": _flip(data, len(data) // 2, 0),
             "desync.mmc": with_valid_crc(_flip(data, len(data) - 12, 5))}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        r = cli("decompress", tmp_path / name, "-o", tmp_path / "out", env={"OMP_NUM_THREADS": "1"})
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mmcodec: error:"), r.stderr
        assert "Traceback" not in r.stderr + r.stdout
    assert not any((tmp_path / "out").rglob("*.png")) if (tmp_path / "out").exists() else True
