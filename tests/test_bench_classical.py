"""Every classical codec round-trips RGB, grey and (where supported) 16-bit images."""
from __future__ import annotations

import numpy as np
import pytest

from mmcodec.bench.classical import CODECS, RANGE_SIDE_BYTES, get_codec
from mmcodec.bench.metrics import psnr
from mmcodec.errors import BadInputError

from conftest import smooth_image


@pytest.mark.parametrize("name", list(CODECS))
def test_round_trip_8bit(name):
    codec = get_codec(name)
    for img in (smooth_image(64, 72, 3, seed=1), smooth_image(64, 72, 1, seed=2)):
        best = codec.ladder(img)[-1]
        out = codec.code(img, best)
        assert out.decoded.shape == img.shape and out.decoded.dtype == np.uint8
        assert out.nbytes > 0
        assert psnr(img, out.decoded) > 32
        low = codec.code(img, codec.ladder(img)[0])
        assert low.nbytes < out.nbytes


@pytest.mark.parametrize("name", list(CODECS))
def test_16bit_depth(name):
    codec = get_codec(name)
    depth = smooth_image(64, 64, 1, seed=3, dtype=np.uint16) // 16 + 600   # mm-like values
    if not codec.supports(depth):
        with pytest.raises(BadInputError):
            codec.code(depth, codec.ladder(np.dtype(np.uint8))[-1])
        return
    out = codec.code(depth, codec.ladder(depth)[-1])
    assert out.decoded.dtype == np.uint16 and out.decoded.shape == depth.shape
    rmse = np.sqrt(np.mean((out.decoded.astype(float) - depth) ** 2))
    assert rmse < 0.01 * (int(depth.max()) - int(depth.min()))
    assert out.nbytes > RANGE_SIDE_BYTES


def test_settings_record_versions_and_ladders():
    for codec in CODECS.values():
        s = codec.settings()
        assert s["version"] and s["ladders"]["8bit"]
        assert codec.ladder(np.dtype(np.uint8)) == sorted(codec.ladder(np.dtype(np.uint8)),
                                                            reverse=codec.name in ("hevc", "hevc420", "vvc", "jpegxl"))
