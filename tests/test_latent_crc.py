"""Latent CRCs (format versions 9-16) and the decoder's pixel bound (issue 24, "Decoding on any
machine").

A stream carries, per modality, a CRC of the decoded latent sealed to the header and side
information, next to the CRC of the float reconstruction. A latent mismatch is a corrupted or
desynchronised stream (refused); a reconstruction-only mismatch is the float synthesis rounding
differently on this machine (a warning; refused with strict). Files without latent CRCs
(versions 1-8) decode as before. `max_pixels` refuses a header asking for too many pixels
before anything is allocated.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.bitstream.container import DEFAULT_MAX_PIXELS
from mmcodec.cli import build_parser, main
from mmcodec.data.images import load_modality
from mmcodec.errors import BitstreamError, ReconstructionMismatchWarning
from mmcodec.models.registry import build_model, install_model

from conftest import TINY_LAMBDAS, smooth_image
from golden import without_latent_crcs
from test_golden_architectures import VARIANTS

# One model per architecture, each built on mmcodec.modality_codec's pipeline in its own way:
# per-modality codecs (separate), a conditional codec reading the reference's decoder (Lu),
# CCEM's views over joint modules with the reference latent as entropy context, and RGB-D TCM
# with decoder-side fusion of the side reconstruction.
ARCHITECTURES = {"separate": "separate-checkerboard", "lu2022": "lu-ca-sa3", "ccem": "ccem",
                 "rgbd_tcm": "tcm-convfusion-decoder"}


@pytest.fixture(scope="module")
def arch_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("arch-models")
    names = {}
    for arch, variant in ARCHITECTURES.items():
        kind, kwargs = VARIANTS[variant]
        torch.manual_seed(1)
        model = build_model(kind, kwargs)
        with torch.no_grad():   # untrained latents are all zero: give every module some weight
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        pair = "rgb-d" if "depth" in model.modalities else "ir-vi"
        names[arch] = f"{pair}/test-{arch}"
        install_model(d, names[arch], kind, kwargs, list(model.modalities), TINY_LAMBDAS, model)
    return d, names


def _images(modalities, h=64, w=96, seed=0) -> dict:
    return {m: load_modality(m, smooth_image(h, w, 3 if m == "rgb" else 1, seed + i,
                                             np.uint16 if m == "depth" else np.uint8))
            for i, m in enumerate(modalities)}


def _ir_vi_blob(arch_models, monkeypatch):
    """A separate-coding codec (trained-like weights: latents with content) and one of its streams."""
    d, names = arch_models
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(d))
    codec = mmcodec.load(names["separate"], quality=2)
    return codec, *codec.encode(_images(("rgb", "ir"), seed=3), 2, effort=0)


def _tampered(blob: bytes, **fields) -> bytes:
    c = unpack(blob)
    for m in c.modalities:
        for k, v in fields.items():
            setattr(m, k, getattr(m, k) ^ v)
    return pack(c)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_writes_and_checks_latent_crcs(arch_models, monkeypatch, arch):
    d, names = arch_models
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(d))
    codec = mmcodec.load(names[arch], quality=2)
    blob, recon = codec.encode(_images(codec.modalities), 2)
    c = unpack(blob)
    assert c.version >= 9 and c.latent_crcs and all(m.latent_crc is not None for m in c.modalities)
    assert all(sum(map(len, c.streams[m])) > 200 and recon[m].std() > 5 for m in codec.modalities)  # content
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # an exact decode warns about nothing
        out = mmcodec.decompress(blob, strict=True)
        for m in codec.modalities:           # every modality alone: its latents are checked too
            assert np.array_equal(codec.decompress(blob, only=m, strict=True)[m], recon[m])
    assert all(np.array_equal(out[m], recon[m]) for m in codec.modalities)
    for i, info in enumerate(c.modalities):  # a wrong latent CRC is an error, strict or not
        bad = unpack(blob)
        bad.modalities[i].latent_crc ^= 1 << i
        with pytest.raises(BitstreamError, match=f"decoded {info.name} latent does not match the encoder's"):
            codec.decompress(pack(bad))
    if arch == "lu2022":   # side information (gamma, beta) is sealed into the current modality only
        bad = unpack(blob)
        assert len(bad.side) > 0
        bad.side = (np.frombuffer(bad.side, "<f2") + np.float16(0.25)).astype("<f2").tobytes()
        with pytest.raises(BitstreamError, match="decoded ir latent does not match"):
            codec.decompress(pack(bad), only="ir")
        assert np.array_equal(codec.decompress(pack(bad), only="rgb", strict=True)["rgb"], recon["rgb"])
    tampered = _tampered(blob, recon_crc=1)   # latents exact, image "rounded differently"
    with pytest.warns(ReconstructionMismatchWarning, match="image differs from the encoder's reconstruction"):
        out = codec.decompress(tampered)
    assert all(np.array_equal(out[m], recon[m]) for m in codec.modalities)
    with pytest.raises(BitstreamError, match="does not match the encoder's reconstruction although its latent"):
        codec.decompress(tampered, strict=True)


def test_damaged_latents_are_refused_before_their_synthesis_runs(arch_models, monkeypatch):
    codec, blob, _ = _ir_vi_blob(arch_models, monkeypatch)
    c = unpack(blob)
    y = bytearray(c.streams["ir"][0])        # the checkerboard's anchors
    assert len(y) > 20
    y[1] ^= 0x10                             # the container is resealed by pack: only the latents know
    c.streams["ir"][0] = bytes(y)
    runs = []
    codec.model.codecs["ir"].g_s.register_forward_hook(lambda *args: runs.append(1))
    with pytest.raises(BitstreamError, match="decoded ir latent does not match the encoder's"):
        codec.decompress(pack(c))
    assert not runs


def _rounding_elsewhere(codec) -> None:
    """Make this decoder's infrared synthesis round like another machine's: one pixel within
    the value range comes out one code value higher, the latents are untouched."""
    def hook(module, args, out):
        out = out.clone()
        inside = (out[0, 0, :64, :96] > 0.1) & (out[0, 0, :64, :96] < 0.9)
        i, j = (int(v) for v in inside.nonzero()[0])
        out[0, 0, i, j] += 1.0 / 255
        return out
    codec.model.codecs["ir"].g_s.register_forward_hook(hook)


def test_synthesis_rounding_elsewhere_warns_and_strict_refuses(arch_models, monkeypatch):
    codec, blob, recon = _ir_vi_blob(arch_models, monkeypatch)
    _rounding_elsewhere(codec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = codec.decompress(blob)
    assert [str(w.message).count("\n") for w in caught if w.category is ReconstructionMismatchWarning] == [0]
    assert np.array_equal(out["rgb"], recon["rgb"])
    diff = np.abs(out["ir"].astype(int) - recon["ir"].astype(int))
    assert diff.max() == 1 and (diff > 0).sum() == 1
    with pytest.raises(BitstreamError, match="decoded ir image does not match the encoder's reconstruction"):
        codec.decompress(blob, strict=True)
    # A file written before latent CRCs cannot tell rounding from damage: refused, as before.
    with pytest.raises(BitstreamError, match="corrupted payload or decoder desynchronised"):
        codec.decompress(without_latent_crcs(blob))


def test_files_without_latent_crcs_are_written_and_decoded_as_before(arch_models, monkeypatch):
    codec, blob, recon = _ir_vi_blob(arch_models, monkeypatch)
    codec.latent_crcs = False
    old, old_recon = codec.encode(_images(("rgb", "ir"), seed=3), 2, effort=0)
    assert old == without_latent_crcs(blob) and unpack(old).version == unpack(blob).version - 8 <= 8
    assert not unpack(old).latent_crcs and not mmcodec.info(old)["latent_crcs"] and mmcodec.info(blob)["latent_crcs"]
    decoded = mmcodec.decompress(old)
    assert all(np.array_equal(decoded[m], old_recon[m]) and np.array_equal(old_recon[m], recon[m]) for m in recon)
    with pytest.raises(BitstreamError, match="decoded rgb image does not match the encoder's reconstruction"):
        mmcodec.decompress(_tampered(old, recon_crc=1))   # no latent CRC: an error without strict


def test_tiled_streams_carry_latent_crcs(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=1, tile=64)
    blob, recon = codec.encode(_images(("rgb", "ir"), 120, 100, seed=7), 1, effort=0)
    c = unpack(blob)
    assert c.tiling is not None and c.version == 12
    out = mmcodec.decompress(blob, strict=True)
    assert all(np.array_equal(out[m], recon[m]) for m in recon)
    with pytest.raises(BitstreamError, match="decoded rgb latent does not match"):
        mmcodec.decompress(_tampered(blob, latent_crc=1))


# -- the pixel bound ---------------------------------------------------------------------------
def test_max_pixels_refuses_before_the_model_is_loaded(arch_models, monkeypatch):
    codec, blob, _ = _ir_vi_blob(arch_models, monkeypatch)                # 64 x 96 rgb + ir = 12288 pixels
    assert set(mmcodec.decompress(blob, max_pixels=12288)) == {"rgb", "ir"}
    monkeypatch.setattr(mmcodec.codec, "find_model", lambda *a: pytest.fail("model loaded"))
    with pytest.raises(BitstreamError, match="stream asks for 12288 pixels .* over the decoder's limit of 12287"):
        mmcodec.decompress(blob, max_pixels=12287)
    with pytest.raises(BitstreamError, match="over the decoder's limit of 100"):
        codec.decompress(blob, max_pixels=100)
    with pytest.raises(BitstreamError, match="over the decoder's limit of 100"):
        codec.decompress(unpack(blob), max_pixels=100)


def test_default_bound_refuses_a_valid_header_asking_for_a_huge_pair(arch_models, monkeypatch):
    c = unpack(_ir_vi_blob(arch_models, monkeypatch)[1])
    for info in c.modalities:                      # each image within the format (2^28), the pair not
        info.height, info.width = 12000, 12000
    blob = pack(c)
    assert unpack(blob).pixels == 288_000_000 > DEFAULT_MAX_PIXELS
    with pytest.raises(BitstreamError, match=f"over the decoder's limit of {DEFAULT_MAX_PIXELS}"):
        mmcodec.decompress(blob)


# -- command line ------------------------------------------------------------------------------
def test_cli_warning_strict_max_pixels_and_info(arch_models, monkeypatch, tmp_path, capsys):
    _, blob, _ = _ir_vi_blob(arch_models, monkeypatch)
    good, tampered = tmp_path / "good.mmc", tmp_path / "tampered.mmc"
    good.write_bytes(blob)
    c = unpack(blob)
    c.modalities[0].recon_crc ^= 1             # the rgb image "rounded differently"
    tampered.write_bytes(pack(c))

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = run("decompress", tampered, "-o", tmp_path / "out")
    assert code == 0 and err.startswith("mmcodec: warning: ") and len(err.strip().splitlines()) == 1
    assert (tmp_path / "out" / "ir" / "tampered.png").is_file()
    code, _, err = run("decompress", tampered, "-o", tmp_path / "strict", "--strict")
    assert code == 2 and err.startswith("mmcodec: error: decoded rgb image does not match") and err.count("\n") == 1
    assert not (tmp_path / "strict").exists()
    code, _, err = run("decompress", good, "-o", tmp_path / "small", "--max-pixels", "1000")
    assert code == 2 and "over the decoder's limit of 1000" in err and err.count("\n") == 1
    code, _, err = run("decompress", good, "-o", tmp_path / "ok", "--strict", "--max-pixels", "0")
    assert code == 0 and err == ""
    code, out, _ = run("info", good, "--json")
    info = json.loads(out)
    assert code == 0 and info["latent_crcs"] and info["format_version"] >= 9 and info["pixels"] == 12288
    tampered.write_bytes(without_latent_crcs(blob))
    code, out, _ = run("info", tampered, "--json")
    assert not json.loads(out)["latent_crcs"]
    usage = build_parser()._subparsers._group_actions[0].choices["decompress"].format_help()
    assert "--max-pixels" in usage and str(DEFAULT_MAX_PIXELS) in usage and "--strict" in usage
