"""The bad-input catalogue (docs/bad_inputs.md): every kind of bad input gets a one-line
message and exit code 2, and leaves no partial output behind.

CLI cases run `mmcodec.cli.main` in-process (the same code path as the command, without an
interpreter start-up each); `test_disk_full_in_a_real_process` runs the real command.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmcodec
from mmcodec.bitstream import FORMAT_VERSION, Tiling, pack, unpack
from mmcodec.cli import main
from mmcodec.data.images import ModalityImage
from mmcodec.errors import BadInputError, BitstreamError, ModelMismatchError

from conftest import smooth_image

torch.set_num_threads(1)


class Ctx:
    """Paths shared by the cases: a good pair, a good stream, and an output folder."""

    def __init__(self, root: Path, pairs: Path) -> None:
        self.root, self.pairs, self.out = root, pairs, root / "out"
        self.vi, self.ir = pairs / "vi" / "pair0.png", pairs / "ir" / "pair0.png"
        self.blob = mmcodec.load("ir-vi/tiny", quality=1).compress(rgb=self.vi, ir=self.ir)

    def file(self, name: str, data: bytes) -> Path:
        p = self.root / name
        p.write_bytes(data)
        return p

    def image(self, name: str, arr: np.ndarray, **save) -> Path:
        p = self.root / name
        Image.fromarray(arr).save(p, **save)
        return p

    def compress(self, rgb: Path, ir: Path, *extra: str) -> list:
        return ["compress", "--rgb", rgb, "--ir", ir, "-o", self.out / "x.mmc", "--model", "ir-vi/tiny", *extra]

    def decompress(self, blob: bytes, *extra: str) -> list:
        return ["decompress", self.file("in.mmc", blob), "-o", self.out, *extra]


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x04
    return bytes(b)


def _restamped(blob: bytes, **fields) -> bytes:
    """The stream with header fields changed and a valid CRC (a well-formed but wrong file)."""
    c = unpack(blob)
    for k, v in fields.items():
        setattr(c, k, v)
    return pack(c)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (grey 8-bit) and that holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def _unmatched(c: Ctx) -> list:
    (c.pairs / "ir" / "pair2.png").rename(c.pairs / "ir" / "other.png")
    return ["compress", c.pairs, "-o", c.out]


def _unreadable_in_folder(c: Ctx) -> list:
    (c.pairs / "vi" / "pair1.png").write_text("this is not an image\n")
    return ["compress", c.pairs, "-o", c.out]


def _empty_pair_folders(c: Ctx) -> list:
    for p in c.pairs.rglob("*.png"):
        p.unlink()
    return ["compress", c.pairs, "-o", c.out]


def _bad_split(c: Ctx) -> list:
    return ["compress", c.pairs, "-o", c.out, "--split", c.file("split.txt", b"pair0\nmissing_pair\n")]


def _wrong_weights(c: Ctx) -> list:
    return c.decompress(_restamped(c.blob, weights="0123456789abcdef"))


def _header_bit(c: Ctx) -> list:
    return c.decompress(_flip(c.blob, 12))


def _payload_bit(c: Ctx) -> list:
    return c.decompress(_flip(c.blob, len(c.blob) - 10))


def _newer_version(c: Ctx) -> list:
    body = bytearray(c.blob[:-4])
    body[4:6] = struct.pack(">H", FORMAT_VERSION + 1)
    return c.decompress(_with_crc(bytes(body)))


def _not_writable(c: Ctx) -> list:
    blocker = c.file("a_file", b"x")  # a path below a regular file cannot be created, even by root
    return ["compress", "--rgb", c.vi, "--ir", c.ir, "-o", blocker / "sub" / "x.mmc", "--model", "ir-vi/tiny"]


def _decode_not_writable(c: Ctx) -> list:
    blocker = c.file("a_file", b"x")
    return ["decompress", c.file("in.mmc", c.blob), "-o", blocker / "sub"]


# id -> (build argv from Ctx, expected message fragment)
CLI_CASES = {
    "missing file": (lambda c: c.compress(c.root / "nope.png", c.ir), "file not found"),
    "missing stream file": (lambda c: ["decompress", c.root / "nope.mmc", "-o", c.out], "file not found"),
    "directory without pairs": (lambda c: ["compress", c.root, "-o", c.out], "no pairs in"),
    "pair folders without images": (_empty_pair_folders, "no pairs found"),
    "unmatched stems": (_unmatched, "unmatched stems"),
    "split names missing stems": (_bad_split, "stems without a pair"),
    "unreadable image": (lambda c: c.compress(c.file("junk.png", b"not an image at all"), c.ir),
                         "not a readable image"),
    "unreadable image in a folder": (_unreadable_in_folder, "not a readable image"),
    "truncated image": (lambda c: c.compress(c.file("half.png", c.vi.read_bytes()[:300]), c.ir),
                        "cannot decode image"),
    "0-byte image": (lambda c: c.compress(c.file("empty.png", b""), c.ir), "empty file (0 bytes)"),
    "image bomb (huge header)": (lambda c: c.compress(c.vi, c.file("bomb.png", _png_header_only(40000, 40000))),
                                 "too large to decode safely"),
    "mismatched sizes": (lambda c: c.compress(c.vi, c.pairs / "ir" / "pair1.png"), "pair sizes differ"),
    "wrong channel count (colour infrared)": (lambda c: c.compress(c.vi, c.vi), "must have one channel"),
    "unsupported bit depth: 32-bit float TIFF": (
        lambda c: c.compress(c.vi, c.image("f.tif", np.random.default_rng(0).random((96, 80)).astype(np.float32))),
        "floating-point image"),
    "unsupported bit depth: 16-bit colour visible": (
        lambda c: c.compress(c.file("rgb16.png", __import__("imagecodecs").png_encode(
            smooth_image(96, 80, 3, 1, dtype=np.uint16))), c.ir), "16-bit colour image"),
    "pair type does not fit the model": (
        lambda c: ["compress", "--rgb", c.vi, "--depth", c.ir, "-o", c.out / "x.mmc", "--model", "ir-vi/tiny"],
        "codes rgb+ir pairs"),
    "unknown model": (lambda c: c.compress(c.vi, c.ir, "--model", "ir-vi/nope"), "not installed"),
    "quality out of range": (lambda c: c.compress(c.vi, c.ir, "--quality", "9"), "quality 9 not available"),
    "not an .mmc file": (lambda c: ["decompress", c.vi, "-o", c.out], "bad magic"),
    "empty stream": (lambda c: c.decompress(b""), "empty file"),
    "truncated stream": (lambda c: c.decompress(c.blob[:-20]), "truncated stream"),
    "flipped bit in header": (_header_bit, "CRC mismatch"),
    "flipped bit in payload": (_payload_bit, "CRC mismatch"),
    "stream from a newer format version": (_newer_version, "upgrade mmcodec"),
    "stream names a model not installed": (lambda c: c.decompress(_restamped(c.blob, model="ir-vi/other")),
                                           "not installed"),
    "stream written with other weights": (_wrong_weights, "weights 0123456789abcdef"),
    "header quality out of range (valid CRC)": (lambda c: c.decompress(_restamped(c.blob, quality=7)),
                                                "corrupted header: quality 7"),
    "--only a modality the stream lacks": (lambda c: c.decompress(c.blob, "--only", "depth"), "--only depth"),
    "output path not writable (compress)": (_not_writable, "cannot write"),
    "output path not writable (decompress)": (_decode_not_writable, "cannot write"),
    "tile size not a multiple of 16": (lambda c: c.compress(c.vi, c.ir, "--tile", "100"),
                                       "tile must be 0 (whole image) or a multiple of 16 from 64 to 65536 pixels"),
    "tiling fields out of range (valid CRC)": (lambda c: c.decompress(_restamped(c.blob, tiling=Tiling(1, 0))),
                                               "corrupted header: tile 1, halo 0 latents out of range"),
}


def _complete_stream(p: Path) -> bool:
    try:
        unpack(p.read_bytes())
        return True
    except BitstreamError:
        return False


def _leftovers(c: Ctx) -> list[Path]:
    """Partial output of a failed command: temporary files, images, incomplete streams.
    (In folder mode the pairs coded before the bad one stay: complete files a rerun skips.)"""
    found = [p for p in c.root.rglob("*") if p.is_file() and (p.suffix in (".mmc", ".png") or ".tmp" in p.name)]
    return [p for p in found if ".tmp" in p.name or
            (c.out in p.parents and not (p.suffix == ".mmc" and _complete_stream(p)))]


@pytest.fixture
def ctx(tiny_env, synthetic_pair_dir, tmp_path) -> Ctx:
    return Ctx(tmp_path, synthetic_pair_dir)


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input(ctx, capsys, case):
    build, expected = CLI_CASES[case]
    argv = [str(a) for a in build(ctx)]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    # stderr holds the error line, after at most a progress bar (\r-separated updates)
    lines = [ln for ln in err.splitlines() if ln and "\r" not in ln and "pair/s" not in ln]
    assert len(lines) == 1 and lines[0].startswith("mmcodec: error: "), err
    assert expected in lines[0] and "Traceback" not in err, err
    assert not _leftovers(ctx), _leftovers(ctx)


# -- the Python API ----------------------------------------------------------------------------
def test_api_float_and_nan_input(tiny_env):
    codec = mmcodec.load("ir-vi/tiny")
    nan_rgb = np.full((64, 64, 3), np.nan, np.float32)
    with pytest.raises(BadInputError, match="unsupported pixel type float32"):
        codec.compress(rgb=nan_rgb, ir=smooth_image(64, 64, 1, 1))
    bad = ModalityImage("rgb", np.full((3, 64, 64), np.nan, np.float32), 8, 3)
    good = ModalityImage("ir", np.zeros((1, 64, 64), np.float32), 8, 1)
    with pytest.raises(BadInputError, match="NaN"):
        codec.compress_images({"rgb": bad, "ir": good})


def test_api_wrong_array_shapes_and_types(tiny_env):
    codec = mmcodec.load("ir-vi/tiny")
    ir = smooth_image(64, 64, 1, 1)
    with pytest.raises(BadInputError, match="unsupported array shape"):
        codec.compress(rgb=np.zeros((64, 64, 4), np.uint8), ir=ir)
    with pytest.raises(BadInputError, match="unsupported pixel type int32"):
        codec.compress(rgb=np.zeros((64, 64, 3), np.int32), ir=ir)
    with pytest.raises(BadInputError, match="16-bit"):
        codec.compress(rgb=np.zeros((64, 64, 3), np.uint16), ir=ir)
    with pytest.raises(BadInputError, match="codes rgb\\+ir pairs"):
        codec.compress(rgb=np.zeros((64, 64, 3), np.uint8))


def test_api_image_larger_than_the_format_allows(tiny_env):
    """Refused before the model runs: the encoder never writes a file the decoder refuses."""
    codec = mmcodec.load("ir-vi/tiny")
    wide = ModalityImage("rgb", np.zeros((3, 1, 70000), np.float32), 8, 3)
    wide_ir = ModalityImage("ir", np.zeros((1, 1, 70000), np.float32), 8, 1)
    with pytest.raises(BadInputError, match="larger than the .mmc format allows"):
        codec.compress_images({"rgb": wide, "ir": wide_ir})


def test_api_wrong_model_for_stream(tiny_env):
    blob = mmcodec.load("ir-vi/tiny").compress(rgb=smooth_image(64, 64, 3, 1), ir=smooth_image(64, 64, 1, 2))
    with pytest.raises(ModelMismatchError, match="not 'rgb-d/tiny'"):
        mmcodec.load("rgb-d/tiny").decompress(blob)
    with pytest.raises(BitstreamError, match="corrupted header: quality 0"):
        mmcodec.decompress(_restamped(blob, quality=0))


def test_a_bug_while_decoding_is_not_blamed_on_the_stream(tiny_env, monkeypatch, tmp_path, capsys):
    """What a damaged payload makes the model raise (ValueError, RuntimeError) is a corrupted
    payload (exit 2); any other exception is a bug and stays an internal error (exit 1)."""
    blob = mmcodec.load("ir-vi/tiny").compress(rgb=smooth_image(64, 64, 3, 1), ir=smooth_image(64, 64, 1, 2))
    model_class = type(mmcodec.load("ir-vi/tiny").model)

    def raising(exc: Exception):
        def decompress(*args, **kwargs):
            raise exc
        return decompress
    for exc in (ValueError("expected 2 strings (y, z), got 3"), RuntimeError("shape mismatch")):
        monkeypatch.setattr(model_class, "decompress", raising(exc))
        with pytest.raises(BitstreamError, match=rf"corrupted payload: decoding failed \({type(exc).__name__}\)"):
            mmcodec.decompress(blob)
    for exc in (KeyError("codecs"), AttributeError("no attribute 'g_s'"), NotImplementedError("tiling")):
        monkeypatch.setattr(model_class, "decompress", raising(exc))
        with pytest.raises(type(exc)):
            mmcodec.decompress(blob)
    path = tmp_path / "pair.mmc"
    path.write_bytes(blob)
    code = main(["decompress", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("mmcodec: internal error: NotImplementedError") and err.count("\n") == 1, err


# -- disk full ---------------------------------------------------------------------------------
def _fill_disk_after(limit: int):
    """A write function that stores `limit` bytes and then fails like a full disk."""
    def write(self, data, *a, **k):
        with open(self, "wb") as fh:
            fh.write(bytes(data)[:limit])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


def test_disk_full_while_compressing(ctx, capsys, monkeypatch):
    monkeypatch.setattr(Path, "write_bytes", _fill_disk_after(10))
    code = main([str(a) for a in ctx.compress(ctx.vi, ctx.ir)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and err.count("\n") == 1, err
    assert not _leftovers(ctx)


def test_disk_full_while_decoding_keeps_no_half_pair(ctx, capsys, monkeypatch):
    saved = []
    real_save = Image.Image.save

    def save(self, fp, *a, **k):  # the first image fits, the second does not
        if saved:
            Path(fp).write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(fp)
        return real_save(self, fp, *a, **k)
    monkeypatch.setattr(Image.Image, "save", save)
    code = main([str(a) for a in ctx.decompress(ctx.blob)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and err.count("\n") == 1, err
    assert saved and not _leftovers(ctx)


def _limit_file_size() -> None:
    # RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_disk_full_in_a_real_process(ctx, tiny_model_dir):
    """The real command under a 64-byte file-size limit: a one-line error, exit 2, no output."""
    env = {**os.environ, "MMCODEC_MODEL_PATH": str(tiny_model_dir), "OMP_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "mmcodec", *map(str, ctx.compress(ctx.vi, ctx.ir))],
                       capture_output=True, text=True, env=env, preexec_fn=_limit_file_size, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "File too large" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not _leftovers(ctx)
