"""Latent-domain tiling (mmcodec/tiling.py): tiled coding computes what whole-image coding
computes, the decoder repeats the encoder's tiled synthesis, and the options are checked."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.cli import main
from mmcodec.data.images import denormalise, load_modality
from mmcodec.errors import BadInputError, BitstreamError
from mmcodec.models.base import PairModel
from mmcodec.models.registry import install_model
from mmcodec.models.separate import SeparateCoding
from mmcodec.tiling import (AUTO_TILE_PIXELS, DEFAULT_TILE, NotTileableError, Tiling, apply_analysis,
                            apply_synthesis, plan_tiling, receptive_reach, tile_spans)

from conftest import TINY, TINY_LAMBDAS, smooth_image

KWARGS = {"modalities": ["rgb", "ir"], **TINY}


def sensitive_model(seed: int = 0) -> SeparateCoding:
    """A tiny untrained model whose latents are not all zero: larger gains, and an output
    layer that gives images with content, so tiling mistakes show in the streams and images."""
    torch.manual_seed(seed)
    model = SeparateCoding(**KWARGS)
    with torch.no_grad():
        for codec in model.codecs.values():
            codec.gains.gain.mul_(30)
            codec.gains.inverse_gain.div_(30)
            codec.g_s[-1].weight.mul_(10)
            codec.g_s[-1].bias.fill_(0.4)
    return model


@pytest.fixture
def codec_env(tmp_path, monkeypatch):
    install_model(tmp_path, "ir-vi/tiling", "separate", KWARGS, ["rgb", "ir"], TINY_LAMBDAS, sensitive_model())
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path))
    return tmp_path


def pair(h: int, w: int) -> dict[str, np.ndarray]:
    return {"rgb": smooth_image(h, w, 3, 11), "ir": smooth_image(h, w, 1, 12)}


def crc(arr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).tobytes()) & 0xFFFFFFFF


# -- the transforms ------------------------------------------------------------------------
def test_tile_spans_are_near_equal_and_cover():
    assert tile_spans(10, 4) == [(0, 4), (4, 7), (7, 10)]
    assert tile_spans(8, 8) == [(0, 8)] and tile_spans(3, 8) == [(0, 3)]
    for length in range(1, 60):
        for tile in (1, 4, 7, 32):
            spans = tile_spans(length, tile)
            sizes = [b - a for a, b in spans]
            assert spans[0][0] == 0 and spans[-1][1] == length and max(sizes) <= tile
            assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_receptive_reach_is_the_measured_influence():
    """Perturb one latent: the pixels it changes reach exactly `reach` latents beyond its own
    16 pixels. Perturb one pixel: the latents it changes reach the analysis reach."""
    codec = sensitive_model().codecs["rgb"]
    stride, reach = receptive_reach(codec.g_s)
    assert (stride, reach) == (16, 2)
    y = torch.randn(1, TINY["M"], 12, 12)
    with torch.no_grad():
        base = codec.g_s(y)
        y[0, :, 6, 6] += 5.0
        changed = (codec.g_s(y) - base).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(1).nonzero().flatten()
    # latents whose 16-pixel blocks the change touches, relative to latent 6
    assert max(6 - int(rows.min()) // 16, int(rows.max()) // 16 - 6) == reach

    stride, reach = receptive_reach(codec.g_a)
    assert (stride, reach) == (16, 2)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        base = codec.g_a(x)
        needed = 0
        for row in (96, 111):  # first and last pixel row of latent row 6
            xx = x.clone()
            xx[0, :, row, :] += 1.0
            hit = ((codec.g_a(xx) - base).abs().amax(dim=(0, 1, 3)) > 0).nonzero().flatten()
            needed = max(needed, 6 - int(hit.min()), int(hit.max()) - 6)
    assert needed == reach  # a latent depends on pixels `reach` latents away, not more


def test_tiled_transforms_equal_whole_and_smaller_halos_do_not():
    codec = sensitive_model().codecs["ir"]
    x = torch.rand(1, 1, 192, 320)
    with torch.no_grad():
        y = codec.g_a(x)
        y_tiled = apply_analysis(codec.g_a, x, Tiling(4, 2))
        assert torch.allclose(y_tiled, y, atol=1e-5)
        y_hat = torch.round(y * 30)
        x_hat = codec.g_s(y_hat)
        assert torch.allclose(apply_synthesis(codec.g_s, y_hat, Tiling(4, 2)), x_hat, atol=1e-4)
        seams = (apply_synthesis(codec.g_s, y_hat, Tiling(8, 1)) - x_hat).abs().amax(dim=(0, 1)) > 1e-4
    # One latent less than the reach shows as seams: errors along the tile borders (rows 96,
    # columns 112 and 224 for 192 x 320 pixels in 2 x 3 tiles), none far from them.
    rows, cols = torch.arange(192)[:, None], torch.arange(320)[None, :]
    near_border = ((rows - 96).abs() <= 32) | ((cols - 112).abs() <= 32) | ((cols - 224).abs() <= 32)
    assert seams.any() and not (seams & ~near_border).any()


def test_transforms_with_attention_are_not_tiled():
    from mmcodec.layers import LiteTransformer
    with pytest.raises(NotTileableError, match="LiteTransformer"):
        receptive_reach(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, 2, 2), LiteTransformer(8, 8, 8)))
    with pytest.raises(NotTileableError):
        receptive_reach(torch.nn.Conv2d(3, 8, 5, 2, 2))


# -- through the codec ---------------------------------------------------------------------
def test_tiled_coding_gives_the_same_streams_and_nearly_the_same_image(codec_env):
    images = {m: load_modality(m, a) for m, a in pair(200, 300).items()}   # padded 256 x 320
    whole_blob, whole = mmcodec.load("ir-vi/tiling", quality=2, tile=0).encode(images)
    tiled_blob, tiled = mmcodec.load("ir-vi/tiling", quality=2, tile=64).encode(images)
    w, t = unpack(whole_blob), unpack(tiled_blob)
    assert w.tiling is None and t.tiling == Tiling(4, 2)
    assert t.streams == w.streams and sum(map(len, w.streams["rgb"])) > 50  # same y and z strings
    for m in images:  # same function up to float rounding: at most one grey level, rarely
        diff = np.abs(tiled[m].astype(int) - whole[m].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        assert whole[m].std() > 5  # the image has content: equality is not trivial


def test_tiled_stream_decodes_to_the_encoders_reconstruction(codec_env):
    codec = mmcodec.load("ir-vi/tiling", quality=1, tile=128)
    blob, recon = codec.encode({m: load_modality(m, a) for m, a in pair(300, 170).items()})
    c = unpack(blob)
    assert c.tiling == Tiling(8, 2) and c.version == 12 and c.exact_params  # tiled, integer h_s, latent CRCs
    out = mmcodec.decompress(blob)  # a fresh codec: the tiling comes from the stream
    for info in c.modalities:
        assert np.array_equal(out[info.name], recon[info.name]) and crc(out[info.name]) == info.recon_crc
    assert np.array_equal(codec.decompress(blob, only="ir")["ir"], recon["ir"])
    # Another tiling than the encoder's gives another image: the tiling is sealed into the
    # latent CRCs (versions 9-16), and the recon CRC refuses it in a stream without them.
    c.tiling = Tiling(8, 0)
    with pytest.raises(BitstreamError, match="latent does not match the encoder's"):
        codec.decompress(pack(c))
    for info in c.modalities:
        info.latent_crc = None
    with pytest.raises(BitstreamError, match="does not match the encoder's reconstruction"):
        codec.decompress(pack(c))


def test_rgb_depth_pairs_tile_too(tiny_env):
    codec = mmcodec.load(pair="rgb-d", tile=64)
    depth = smooth_image(130, 150, 1, 7, dtype=np.uint16)
    depth[:20, :30] = 0  # holes
    blob, recon = codec.encode({"rgb": load_modality("rgb", smooth_image(130, 150, 3, 8)),
                                "depth": load_modality("depth", depth)})
    assert unpack(blob).tiling == Tiling(4, 2)
    out = mmcodec.decompress(blob)
    assert out["depth"].dtype == np.uint16 and all(np.array_equal(out[m], recon[m]) for m in out)


def test_automatic_tiling_above_the_threshold():
    model = SeparateCoding(**KWARGS)
    side = int(AUTO_TILE_PIXELS ** 0.5) // 64 * 64
    assert plan_tiling(model, None, (side, side)) is None                   # small: whole image
    assert plan_tiling(model, None, (2048, 2048)) == Tiling(DEFAULT_TILE // 16, 2)
    assert plan_tiling(model, 0, (4096, 4096)) is None                      # disabled
    assert plan_tiling(model, 512, (512, 512)) is None                      # one tile = whole image
    assert plan_tiling(model, 512, (512, 576)) == Tiling(32, 2)
    other = PairModel()                                                     # e.g. lu2022, ccem
    assert plan_tiling(other, None, (4096, 4096)) is None                   # falls back to whole
    with pytest.raises(BadInputError, match="codes whole images only"):
        plan_tiling(other, 512, (4096, 4096))


def test_whole_image_architectures_refuse_tiles_and_tiled_streams(codec_env, monkeypatch):
    from test_lu2022 import LAMBDAS, TINY as LU_TINY, tiny_model
    install_model(codec_env, "ir-vi/lu-tiny", "lu2022", dict(LU_TINY), ["rgb", "ir"], LAMBDAS, tiny_model())
    with pytest.raises(BadInputError, match=r"ir-vi/lu-tiny \(architecture lu2022\) codes whole images only"):
        mmcodec.load("ir-vi/lu-tiny", tile=512)
    blob = mmcodec.load("ir-vi/tiling", tile=64).compress(**pair(64, 128))
    codec = mmcodec.load("ir-vi/tiling")
    monkeypatch.setattr(codec.model, "supports_tiling", False)
    with pytest.raises(BitstreamError, match="the stream is tiled"):
        codec.decompress(blob)


@pytest.mark.parametrize("tile", [100, 48, -16, 1 << 17, 512.0, True, "512"])
def test_bad_tile_options_are_one_line_errors(codec_env, tile):
    with pytest.raises(BadInputError, match=r"^tile must be 0 \(whole image\) or a multiple of 16") as err:
        mmcodec.load("ir-vi/tiling", tile=tile)
    assert "\n" not in str(err.value)


def test_numpy_integer_tile_is_accepted(codec_env):
    assert mmcodec.load("ir-vi/tiling", tile=np.int64(512)).tile == 512


def test_cli_tile_option(codec_env, tmp_path, capsys):
    from PIL import Image
    for m, a in pair(96, 200).items():
        Image.fromarray(a).save(tmp_path / f"{m}.png")
    args = ["--rgb", tmp_path / "rgb.png", "--ir", tmp_path / "ir.png", "--model", "ir-vi/tiling"]
    assert main(["compress", *map(str, args), "-o", str(tmp_path / "t.mmc"), "--tile", "64"]) == 0
    assert main(["info", str(tmp_path / "t.mmc")]) == 0
    assert "tiles of up to 64 px, halo 32 px" in capsys.readouterr().out
    assert main(["decompress", str(tmp_path / "t.mmc"), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "ir" / "t.png").is_file()
    assert main(["compress", *map(str, args), "-o", str(tmp_path / "w.mmc"), "--tile", "0"]) == 0
    assert unpack((tmp_path / "w.mmc").read_bytes()).tiling is None
    capsys.readouterr()
    assert main(["compress", *map(str, args), "-o", str(tmp_path / "x.mmc"), "--tile", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mmcodec: error: tile must be 0") and "got 100" in err
    assert not (tmp_path / "x.mmc").exists()


# -- big images outside the model ----------------------------------------------------------
def test_banded_integer_conversion_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    data = rng.normal(0.5, 0.4, (3, 600, 70)).astype(np.float32)   # more rows than one band
    direct = np.transpose(np.rint(np.clip(data, 0, 1) * 255), (1, 2, 0)).astype(np.uint8)
    assert np.array_equal(denormalise(data, 8, 3, (0, 255)), direct)
    grey = denormalise(data, 16, 1, (100, 40000))
    assert grey.shape == (600, 70) and np.array_equal(grey, np.rint(np.clip(data[0], 0, 1) * 39900 + 100))


def test_banded_ms_ssim_equals_the_whole_image_computation(monkeypatch):
    import mmcodec.bench.metrics as M
    rng = np.random.default_rng(1)
    for shape in [(300, 260, 3), (283, 301)]:
        ref = rng.integers(0, 256, shape, dtype=np.uint8)
        test = np.clip(ref.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
        whole, win = M.ms_ssim(ref, test, 255)
        with monkeypatch.context() as patch:  # force bands of a few rows
            patch.setattr(M, "_MSSSIM_WHOLE_VALUES", 0)
            patch.setattr(M, "_MSSSIM_BAND_VALUES", 5000)
            banded, banded_win = M.ms_ssim(ref, test, 255)
        assert banded_win == win and banded == pytest.approx(whole, abs=1e-6) and whole < 0.999
