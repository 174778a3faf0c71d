"""Grey visible images are coded by the infrared codec of a separate model (FLAG_GREY_VIA_IR).

48 of TNO test's 49 visible images are grey; the visible codec, trained on colour crops,
spends bits on three equal channels. The infrared codec codes one plane.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.data.synthetic import smooth_image
from mmcodec.errors import BitstreamError


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def pair():
    grey, ir = smooth_image(96, 128, 1, seed=3), smooth_image(96, 128, 1, seed=4)
    return np.repeat(grey[..., None], 3, 2), grey, ir


@pytest.fixture()
def codec():
    return mmcodec.load("ir-vi/separate")


def test_grey_visible_goes_through_the_infrared_codec(codec, pair, tmp_path):
    rgb3, grey, ir = pair
    routed = codec.compress(rgb=rgb3, ir=ir, quality=2)
    info = mmcodec.info(routed)
    assert info["modalities"][0]["name"] == "rgb" and info["modalities"][0]["grey_via_ir"]
    out = codec.decompress(routed, strict=True)
    assert out["rgb"].shape == grey.shape                       # written back as a grey image
    assert np.array_equal(codec.decompress(routed, only="rgb", strict=True)["rgb"], out["rgb"])
    codec.grey_via_ir = False
    plain = codec.compress(rgb=rgb3, ir=ir, quality=2)
    assert not mmcodec.info(plain)["modalities"][0]["grey_via_ir"]
    plain_out = codec.decompress(plain, strict=True)
    # the infrared stream is the same either way; the visible one is smaller and no worse
    assert mmcodec.info(plain)["stream_bytes"]["ir"] == info["stream_bytes"]["ir"]
    assert info["stream_bytes"]["rgb"] < mmcodec.info(plain)["stream_bytes"]["rgb"]
    assert _psnr(out["rgb"], grey) > _psnr(plain_out["rgb"], grey) - 0.5
    # a one-channel visible file is grey too, and a flagged stream decodes in a fresh codec
    from PIL import Image
    Image.fromarray(grey).save(tmp_path / "vi.png")
    Image.fromarray(ir).save(tmp_path / "ir.png")
    fresh = mmcodec.load("ir-vi/separate")
    assert fresh.compress(rgb=str(tmp_path / "vi.png"), ir=str(tmp_path / "ir.png"), quality=2) == routed
    assert np.array_equal(fresh.decompress(routed)["rgb"], out["rgb"])


def test_info_names_the_route(codec, pair, tmp_path, capsys):
    from mmcodec.cli import main
    rgb3, _, ir = pair
    (tmp_path / "grey.mmc").write_bytes(codec.compress(rgb=rgb3, ir=ir, quality=1))
    assert main(["info", str(tmp_path / "grey.mmc")]) == 0
    assert "rgb 128x96 8-bit grey, coded by the infrared codec" in capsys.readouterr().out


def test_encoder_refinement_keeps_the_route(codec, pair):
    rgb3, _, ir = pair
    images = {"rgb": mmcodec.data.images.load_modality("rgb", rgb3), "ir": mmcodec.data.images.load_modality("ir", ir)}
    blob, recon = codec.encode(images, quality=1, effort=1)
    assert mmcodec.info(blob)["modalities"][0]["grey_via_ir"]
    out = codec.decompress(blob, strict=True)
    assert all(np.array_equal(out[m], recon[m]) for m in recon)


def test_colour_visible_is_unchanged(codec, pair):
    _, _, ir = pair
    colour = smooth_image(96, 128, 3, seed=5)
    a = codec.compress(rgb=colour, ir=ir, quality=2)
    codec.grey_via_ir = False
    assert codec.compress(rgb=colour, ir=ir, quality=2) == a
    assert not mmcodec.info(a)["modalities"][0]["grey_via_ir"]


def test_the_flag_is_checked(codec, pair):
    rgb3, _, ir = pair
    c = unpack(codec.compress(rgb=rgb3, ir=ir, quality=2))
    rgb_info, ir_info = c.modalities
    for bad in ([rgb_info, dataclasses.replace(ir_info, grey_via_ir=True)],              # on the infrared record
                [dataclasses.replace(rgb_info, channels=3), ir_info]):                  # on a colour record
        with pytest.raises(BitstreamError, match="corrupted header"):
            unpack(pack(dataclasses.replace(c, modalities=bad)))
    # a joint model has no infrared codec for the visible image: a flagged stream naming it is refused
    lu = mmcodec.load("ir-vi/lu2022")
    assert lu._grey_view is None
    forged = dataclasses.replace(c, model=lu.name, weights=lu.installed.weights_hash)
    with pytest.raises(BitstreamError, match="infrared codec"):
        lu.decompress(forged)
