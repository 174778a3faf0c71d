"""Python API round trips: decode(encode(x)) equals what the encoder predicted, bit for bit."""
import zlib

import numpy as np
import pytest

import mmcodec
from mmcodec.bitstream import unpack
from mmcodec.data.images import load_modality
from mmcodec.errors import BadInputError, BitstreamError, ModelMismatchError

from conftest import smooth_image


def test_round_trip_matches_encoder_prediction(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    rgb, ir = smooth_image(70, 130, 3, 1), smooth_image(70, 130, 1, 2)
    blob = codec.compress(rgb=rgb, ir=ir)
    c = unpack(blob)
    out = codec.decompress(blob)
    assert out["rgb"].shape == (70, 130, 3) and out["rgb"].dtype == np.uint8
    assert out["ir"].shape == (70, 130) and out["ir"].dtype == np.uint8
    for info in c.modalities:  # the decoder's output is the encoder-side reconstruction
        assert zlib.crc32(np.ascontiguousarray(out[info.name]).tobytes()) == info.recon_crc
    # decoding is repeatable and module-level decompress finds the model from the header
    again = mmcodec.decompress(blob)
    assert all(np.array_equal(out[m], again[m]) for m in out)


def test_only_decodes_one_modality(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=1)
    blob = codec.compress(rgb=smooth_image(64, 64, 3, 3), ir=smooth_image(64, 64, 1, 4))
    full = codec.decompress(blob)
    only = codec.decompress(blob, only="ir")
    assert set(only) == {"ir"} and np.array_equal(only["ir"], full["ir"])


def test_grey_visible_and_16bit_infrared(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    grey3 = np.repeat(smooth_image(64, 80, 1, 5)[..., None], 3, axis=2)  # three identical channels
    ir16 = smooth_image(64, 80, 1, 6, dtype=np.uint16) // 8 + 20000       # narrow radiometric range
    blob = codec.compress(rgb=grey3, ir=ir16)
    c = unpack(blob)
    rgb_info, ir_info = c.modalities
    assert rgb_info.channels == 1 and ir_info.bit_depth == 16 and ir_info.value_range[0] >= 20000
    out = codec.decompress(blob)
    assert out["rgb"].shape == (64, 80) and out["ir"].dtype == np.uint16
    assert out["ir"].min() >= ir_info.value_range[0] and out["ir"].max() <= ir_info.value_range[1]


def test_rgb_depth_model(tiny_env):
    codec = mmcodec.load(pair="rgb-d")
    depth = smooth_image(96, 128, 1, 7, dtype=np.uint16)
    depth[:10, :10] = 0  # holes
    out = codec.decompress(codec.compress(rgb=smooth_image(96, 128, 3, 8), depth=depth))
    assert out["depth"].dtype == np.uint16 and out["depth"].shape == (96, 128)


def test_size_mismatch_names_both_sizes(tiny_env):
    codec = mmcodec.load("ir-vi/tiny")
    with pytest.raises(BadInputError, match=r"rgb is 80x64, ir is 81x64"):
        codec.compress(rgb=smooth_image(64, 80, 3, 1), ir=smooth_image(64, 81, 1, 1))


def test_wrong_model_and_wrong_weights(tiny_env, tmp_path):
    blob = mmcodec.load("ir-vi/tiny").compress(rgb=smooth_image(64, 64, 3, 1), ir=smooth_image(64, 64, 1, 1))
    with pytest.raises(BadInputError):
        mmcodec.load("rgb-d/tiny").compress(rgb=smooth_image(64, 64, 3, 1), ir=smooth_image(64, 64, 1, 1))
    with pytest.raises(ModelMismatchError, match="not 'rgb-d/tiny'"):
        mmcodec.load("rgb-d/tiny").decompress(blob)
    c = unpack(blob)
    c.weights = "00" * 8
    from mmcodec.bitstream import pack
    with pytest.raises(ModelMismatchError, match="weights"):
        mmcodec.decompress(pack(c))


def test_payload_corruption_is_caught(tiny_env):
    from mmcodec.bitstream import pack
    blob = mmcodec.load("ir-vi/tiny").compress(rgb=smooth_image(64, 64, 3, 1), ir=smooth_image(64, 64, 1, 1))
    c = unpack(blob)
    y = bytearray(c.streams["rgb"][0])
    y[len(y) // 2] ^= 0xFF
    c.streams["rgb"][0] = bytes(y)
    with pytest.raises(BitstreamError):  # valid CRC, wrong content: the recon CRC catches it
        mmcodec.decompress(pack(c))


# Cross-process and thread-count determinism: tests/test_determinism.py.


def test_real_pair_round_trip(tiny_env, shared_data):
    rs = shared_data / "ir_vi" / "roadscene"
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    blob = codec.compress(rgb=rs / "vi" / "FLIR_00006.jpg", ir=rs / "ir" / "FLIR_00006.jpg")
    out = codec.decompress(blob)
    ref = load_modality("ir", rs / "ir" / "FLIR_00006.jpg")
    assert out["ir"].shape == (ref.height, ref.width)
    depth_dir = shared_data / "rgb_depth" / "rgbdd"
    stem = (depth_dir / "split_test.txt").read_text().split()[0]
    codec = mmcodec.load("rgb-d/tiny", quality=1)
    out = codec.decompress(codec.compress(rgb=depth_dir / "rgb" / f"{stem}.jpg", depth=depth_dir / "depth" / f"{stem}.png"))
    assert out["depth"].dtype == np.uint16


def test_depth_holes_stay_zero_and_no_impossible_depths(tiny_env):
    depth = (smooth_image(96, 128, 1, 9, dtype=np.uint16) // 20 + 800).astype(np.uint16)
    depth[20:40, 30:70] = 0                               # a hole
    im = load_modality("depth", depth)
    assert im.holes and im.value_range[0] == int(depth[depth > 0].min())
    assert np.array_equal(im.to_integer(), depth)         # exact without coding error
    noisy = im.data + np.random.default_rng(0).uniform(-0.04, 0.04, im.data.shape).astype(np.float32)
    out = im.to_integer(noisy)                            # a lossy codec's error, simulated
    assert (out[depth == 0] == 0).all()                   # holes come back as holes
    assert out[out > 0].min() >= im.value_range[0]        # nothing between 0 and the valid range
    codec = mmcodec.load("rgb-d/tiny", quality=1)         # and the flag survives the container
    blob = codec.compress(rgb=smooth_image(96, 128, 3, 8), depth=depth)
    assert unpack(blob).modalities[1].holes
    assert codec.decompress(blob)["depth"].dtype == np.uint16
