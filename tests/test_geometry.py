"""Pairs whose images differ in size (FLIR-style: visible at twice the infrared resolution)
through the `.mmc` Codec and the command line: per-modality padding, bit-exact decoding,
headers carrying both sizes, and the geometry check of every model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcodec.bitstream import pack, unpack
from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.errors import BadInputError, BitstreamError
from mmcodec.models.registry import find_model, install_model
from mmcodec.models.separate import SeparateCoding

from conftest import smooth_image
from test_lu2022 import LAMBDAS, TINY, tiny_model

TWO_TO_ONE = "test-ir-vi/lu2022-2to1"
SAME_SIZE = "test-ir-vi/lu2022"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("geometry-models")
    install_model(d, TWO_TO_ONE, "lu2022", {**TINY, "ratio": 2}, ["rgb", "ir"], LAMBDAS, tiny_model(ratio=2),
                  description="tiny untrained Lu 2022, visible at twice the infrared resolution")
    install_model(d, SAME_SIZE, "lu2022", dict(TINY), ["rgb", "ir"], LAMBDAS, tiny_model(),
                  description="tiny untrained Lu 2022, same-size pairs")
    return d


@pytest.fixture
def models(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(model_dir))
    return model_dir


def pair(vi_hw: tuple[int, int], ir_hw: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    return {"rgb": smooth_image(*vi_hw, 3, seed), "ir": smooth_image(*ir_hw, 1, seed + 1)}


def test_models_declare_their_geometry():
    two_to_one = tiny_model(ratio=2)
    assert (two_to_one.size_ratio("rgb"), two_to_one.size_ratio("ir")) == (2, 1)
    # the infrared codec downsamples 8x (latent) and 4x more (hyper-latent)
    assert (two_to_one.padding_multiple("rgb"), two_to_one.padding_multiple("ir")) == (64, 32)
    for same in (tiny_model(), SeparateCoding(("rgb", "ir"), N=16, M=24, num_rates=2)):
        assert {same.size_ratio(m) for m in ("rgb", "ir")} == {1}
        assert {same.padding_multiple(m) for m in ("rgb", "ir")} == {64}


# visible = 2 x infrared exactly, +1 (floor-downsampled odd visible), -1 (ceil-downsampled),
# and a visible size whose padding exceeds twice the infrared padding (65 -> 128, 32 -> 32).
@pytest.mark.parametrize("vi_hw, ir_hw", [((70, 94), (35, 47)), ((71, 95), (35, 47)), ((69, 93), (35, 47)),
                                          ((65, 80), (32, 40))])
def test_two_to_one_round_trip_is_bit_exact(models, vi_hw, ir_hw):
    codec = Codec(find_model(TWO_TO_ONE), quality=2)
    images = {m: load_modality(m, a) for m, a in pair(vi_hw, ir_hw).items()}
    blob, recon = codec.encode(images)
    header = {i.name: (i.height, i.width) for i in unpack(blob).modalities}
    assert header == {"rgb": vi_hw, "ir": ir_hw}
    assert codec.padded_size("ir", *ir_hw) == tuple(-(-s // 32) * 32 for s in ir_hw)
    out = codec.decompress(blob)
    assert out["rgb"].shape == (*vi_hw, 3) and out["ir"].shape == ir_hw
    for m in ("rgb", "ir"):
        assert np.array_equal(out[m], recon[m]), m
    # The infrared really is coded conditioned on the visible image: another visible image
    # of the same size gives another infrared reconstruction.
    other = {**images, "rgb": load_modality("rgb", smooth_image(*vi_hw, 3, 99))}
    assert not np.array_equal(codec.encode(other)[1]["ir"], recon["ir"])
    # --only the reference reads only the visible stream
    c = unpack(blob)
    c.streams["ir"] = [b"", b""]
    only = codec.decompress(pack(c), only="rgb")
    assert set(only) == {"rgb"} and np.array_equal(only["rgb"], recon["rgb"])
    only_ir = codec.decompress(blob, only="ir")
    assert set(only_ir) == {"ir"} and np.array_equal(only_ir["ir"], recon["ir"])


def test_info_reports_both_sizes_and_bpp_over_each_image(models):
    codec = Codec(find_model(TWO_TO_ONE), quality=1)
    blob = codec.compress(**pair((70, 94), (35, 47)))
    info = unpack(blob).info(len(blob))
    assert {m["name"]: (m["width"], m["height"]) for m in info["modalities"]} == {"rgb": (94, 70), "ir": (47, 35)}
    assert info["bpp"]["ir"] == pytest.approx(8 * info["stream_bytes"]["ir"] / (35 * 47))
    assert info["bpp"]["rgb"] == pytest.approx(8 * info["stream_bytes"]["rgb"] / (70 * 94))
    assert info["pair_bpp"] == pytest.approx(8 * len(blob) / (70 * 94))   # over the larger image


@pytest.mark.parametrize("vi_hw, ir_hw, expected", [
    ((64, 64), (64, 64), "128x128 for ir 64x64; got rgb 64x64"),   # a same-size pair
    ((72, 94), (35, 47), "94x70 for ir 47x35; got rgb 94x72"),     # 2 pixels too many in height
    ((70, 91), (35, 47), "94x70 for ir 47x35; got rgb 91x70"),
    ((35, 47), (70, 94), "188x140 for ir 94x70; got rgb 47x35"),   # the pair the wrong way round
])
def test_two_to_one_model_refuses_other_geometry(models, vi_hw, ir_hw, expected):
    codec = Codec(find_model(TWO_TO_ONE), quality=1)
    with pytest.raises(BadInputError) as err:
        codec.compress(**pair(vi_hw, ir_hw))
    assert str(err.value) == (f"pair sizes do not fit model {TWO_TO_ONE}: rgb must be 2x the ir size "
                              f"(±1 pixel per side), {expected}")


def test_same_size_model_refuses_two_to_one_pair(models):
    codec = Codec(find_model(SAME_SIZE), quality=1)
    with pytest.raises(BadInputError, match=r"^pair sizes differ: rgb is 94x70, ir is 47x35 \(the images"):
        codec.compress(**pair((70, 94), (35, 47)))


def test_header_with_sizes_off_the_geometry_is_refused_before_decoding(models):
    two_to_one = Codec(find_model(TWO_TO_ONE), quality=1)
    c = unpack(two_to_one.compress(**pair((70, 94), (35, 47))))
    c.modalities[1].height = 37                        # ir 47x37 needs rgb 94x74 +-1
    with pytest.raises(BitstreamError, match="do not fit the pair geometry of test-ir-vi/lu2022-2to1"):
        two_to_one.decompress(pack(c))
    same = Codec(find_model(SAME_SIZE), quality=1)
    c = unpack(same.compress(**pair((64, 64), (64, 64))))
    c.modalities[1].height = 32
    with pytest.raises(BitstreamError, match="the images of the pair differ in size"):
        same.decompress(pack(c))


# -- the real command -----------------------------------------------------------------------
def run_cli(model_dir: Path, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "MMCODEC_MODEL_PATH": str(model_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mmcodec", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_compress_info_decompress_two_to_one(models, tmp_path):
    arrays = pair((70, 94), (35, 47), seed=3)
    vi, ir = tmp_path / "vi.png", tmp_path / "ir.png"
    Image.fromarray(arrays["rgb"]).save(vi)
    Image.fromarray(arrays["ir"]).save(ir)
    out = tmp_path / "pair.mmc"
    r = run_cli(models, "compress", "--rgb", vi, "--ir", ir, "-o", out, "--model", TWO_TO_ONE, "--quality", "2",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pair_bpp"] == pytest.approx(8 * out.stat().st_size / (70 * 94))
    # the command wrote what the API writes, and the decoder's images are the encoder's
    codec = Codec(find_model(TWO_TO_ONE), quality=2)
    blob, recon = codec.encode({m: load_modality(m, a) for m, a in arrays.items()},
                               effort=codec.resolve_effort(None))   # the command's default effort
    assert out.read_bytes() == blob

    r = run_cli(models, "info", out)
    assert r.returncode == 0, r.stderr
    assert "images: rgb 94x70 8-bit, ir 47x35 8-bit" in r.stdout

    r = run_cli(models, "decompress", out, "-o", tmp_path / "dec")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "dec" / "vi" / "pair.png")), recon["rgb"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "dec" / "ir" / "pair.png")), recon["ir"])

    r = run_cli(models, "decompress", out, "-o", tmp_path / "only", "--only", "rgb", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["written"] == [str(tmp_path / "only" / "vi" / "pair.png")]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "only" / "vi" / "pair.png")), recon["rgb"])


def test_cli_wrong_geometry_exits_2_with_one_line(models, tmp_path):
    """docs/bad_inputs.md rows 47-49 through the real command."""
    def saved(name: str, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
        paths = (tmp_path / f"{name}-vi.png", tmp_path / f"{name}-ir.png")
        Image.fromarray(arrays["rgb"]).save(paths[0])
        Image.fromarray(arrays["ir"]).save(paths[1])
        return paths

    same_vi, same_ir = saved("same", pair((64, 64), (64, 64)))
    flir_vi, flir_ir = saved("flir", pair((70, 94), (35, 47)))
    c = unpack(Codec(find_model(TWO_TO_ONE), quality=1).compress(**pair((70, 94), (35, 47))))
    c.modalities[1].height = 37
    bad_header = tmp_path / "bad-header.mmc"
    bad_header.write_bytes(pack(c))
    cases = [
        (("compress", "--rgb", same_vi, "--ir", same_ir, "-o", tmp_path / "x.mmc", "--model", TWO_TO_ONE),
         f"pair sizes do not fit model {TWO_TO_ONE}: rgb must be 2x the ir size (±1 pixel per side), "
         "128x128 for ir 64x64; got rgb 64x64"),
        (("compress", "--rgb", flir_vi, "--ir", flir_ir, "-o", tmp_path / "y.mmc", "--model", SAME_SIZE),
         "pair sizes differ: rgb is 94x70, ir is 47x35 (the images of a pair must be aligned and the same size)"),
        (("decompress", bad_header, "-o", tmp_path / "dec"),
         f"corrupted header: the image sizes do not fit the pair geometry of {TWO_TO_ONE}"),
    ]
    for args, message in cases:
        r = run_cli(models, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip().splitlines() == [f"mmcodec: error: {message}"], r.stderr
    assert not any(p.suffix == ".mmc" and p != bad_header for p in tmp_path.iterdir())
    assert not (tmp_path / "dec").exists() or not any((tmp_path / "dec").rglob("*.png"))
