"""Encoder effort (mmcodec.refine): refinement at encode time with the decoder untouched."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmcodec
import mmcodec.refine as refine_module
from mmcodec.bitstream import unpack
from mmcodec.data.images import load_modality
from mmcodec.errors import BadInputError, BitstreamError
from conftest import smooth_image
from golden import (MEAN_TOLERANCE, coded_digest, file_digest, reconstruction_means, same_float_kernels,
                    without_latent_crcs)

# The .mmc files of the tiny models (conftest) on the pair below, written by mmcodec at 9698325,
# before encoder effort existed: effort 0 must keep producing them. (file hash, hash of all but
# the reconstruction CRCs, decoded means): see tests/golden.py for why three. Since issue 24
# files carry latent CRCs (versions 9-12 at effort 0): GOLDEN is checked on the file stripped of
# them (what `Codec.latent_crcs = False` writes), LATENT_CRC_GOLDEN (file hash, coded digest,
# which includes the latent CRCs of these exact streams) on the file as written, re-recorded then.
GOLDEN = {
    ("ir-vi/tiny", 1): ("8714e3e22fb05fbe", "62df20f254c99ab6", {'rgb': 10.457, 'ir': 43.078}),
    ("ir-vi/tiny", 2): ("a621f348d53692c4", "ba0c071517c1027e", {'rgb': 10.456, 'ir': 43.063}),
    ("rgb-d/tiny", 1): ("c1b5d020d54e6b43", "b4175c60748bdd97", {'rgb': 15.433, 'depth': 6844.963}),
    ("rgb-d/tiny", 2): ("5401b67e37f5a6ac", "eae3956bbf2697a4", {'rgb': 15.43, 'depth': 6845.469}),
}


LATENT_CRC_GOLDEN = {
    ("ir-vi/tiny", 1): ("a7562bb41a634876", "aac97ab995376c31"),
    ("ir-vi/tiny", 2): ("1f4ed4ee40600f14", "d018f424d44e26fe"),
    ("rgb-d/tiny", 1): ("607df0d2fa09c262", "e2ba6994d6427700"),
    ("rgb-d/tiny", 2): ("bff2661102812d75", "10f5bfca269470cc"),
}


def _images(other: str) -> dict:
    rgb = smooth_image(96, 80, 3, 1)
    o = smooth_image(96, 80, 1, 2, np.uint16 if other == "depth" else np.uint8)
    return {"rgb": load_modality("rgb", rgb), other: load_modality(other, o)}


def _check_refined(codec, images: dict, quality: int, effort: int) -> bytes:
    """Encode at `effort`: the real cost is not above the unrefined one, and the stream decodes
    bit-exactly to the encoder's reconstruction (the CRC is checked too)."""
    report: dict = {}
    blob, recon = codec.encode(images, quality, effort=effort, report=report)
    assert report["rd_cost_after"] <= report["rd_cost_before"]
    decoded = mmcodec.decompress(blob)
    for m in recon:
        np.testing.assert_array_equal(decoded[m], recon[m])
    return blob


@pytest.mark.parametrize("name,quality", sorted(GOLDEN))
def test_effort_zero_is_the_unrefined_encoder(tiny_env, name, quality):
    codec = mmcodec.load(name, quality=quality)
    blob = codec.compress_images(_images(name.split("/")[0] == "rgb-d" and "depth" or "ir"), quality, effort=0)
    file_hash, coded_hash, means = GOLDEN[(name, quality)]
    new_file_hash, new_coded_hash = LATENT_CRC_GOLDEN[(name, quality)]
    old = without_latent_crcs(blob)
    assert coded_digest(old) == coded_hash and coded_digest(blob) == new_coded_hash
    for m, mean in reconstruction_means(blob).items():
        assert abs(mean - means[m]) <= MEAN_TOLERANCE, m
    if same_float_kernels():
        assert file_digest(old) == file_hash and file_digest(blob) == new_file_hash
    assert unpack(blob).effort == 0 and unpack(old).version <= 4 and unpack(blob).version == unpack(old).version + 8


@pytest.mark.parametrize("name,other", [("ir-vi/tiny", "ir"), ("rgb-d/tiny", "depth")])
def test_refined_stream_decodes_bit_exactly_and_costs_no_more(tiny_env, name, other):
    codec = mmcodec.load(name, quality=2)
    images = _images(other)
    report: dict = {}
    blob, recon = codec.encode(images, 2, effort=2, report=report)
    assert report["iterations"] == refine_module.EFFORT_ITERATIONS[2]
    assert report["rd_cost_after"] <= report["rd_cost_before"]
    c = unpack(blob)
    assert c.effort == 2 and c.version >= 5
    decoded = mmcodec.decompress(blob)             # the CRC of the reconstruction is checked
    for m in recon:
        np.testing.assert_array_equal(decoded[m], recon[m])
    # deterministic: the same input, model and effort give the same bytes
    assert codec.encode(images, 2, effort=2)[0] == blob
    assert mmcodec.info(blob)["effort"] == 2


def test_refinement_runs_with_the_callers_threads(tiny_env, monkeypatch):
    """Refinement uses the caller's thread count (or Codec.refine_threads) while coding stays
    single-threaded; a two-thread refinement still gives a file that decodes bit-exactly."""
    seen = []
    real = refine_module.refine

    def spy(*args, **kwargs):
        seen.append((kwargs.get("threads"), torch.get_num_threads()))
        return real(*args, **kwargs)
    monkeypatch.setattr("mmcodec.codec.refine", spy)
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    codec.refine_threads = 2
    blob = _check_refined(codec, _images("ir"), 2, effort=1)
    assert seen == [(2, 1)]                 # asked for 2 threads, called from the 1-thread coding path
    assert codec.encode(_images("ir"), 2, effort=1)[0] == blob


def test_refinement_lowers_the_rounded_cost(tiny_env):
    """The training objective with hard rounding is lower at the refined latents."""
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    x = codec.model_inputs(_images("ir"))
    lam, valid = codec.installed.lambdas[1], {"rgb": (96, 80), "ir": (96, 80)}

    def rounded_cost(latents):
        with torch.no_grad():
            out = codec.model.relaxed_forward(x, latents, 1, torch.round)
            return float(sum(refine_module.rd_cost(out["bits"], out["x_hat"], x, valid, lam, {}).values()))
    with torch.no_grad():
        start = codec.model.encoder_latents(x, 1)
    refined, _ = refine_module.refine(codec.model, x, 1, lam, {}, valid, refine_module.Schedule(30, 0.01))
    assert rounded_cost(refined) < rounded_cost(start)


def test_worse_refinement_is_not_kept(tiny_env, monkeypatch):
    """A refinement that only makes things worse (a huge step) must leave the unrefined streams."""
    monkeypatch.setitem(refine_module.EFFORT_LEVELS, 1, refine_module.Schedule(2, 50.0))
    codec = mmcodec.load("ir-vi/tiny", quality=1)
    images = _images("ir")
    plain = unpack(codec.encode(images, 1, effort=0)[0])
    report: dict = {}
    refined = unpack(codec.encode(images, 1, effort=1, report=report)[0])
    assert report["refined"] == {"rgb": False, "ir": False}
    assert report["rd_cost_after"] == report["rd_cost_before"]
    assert refined.streams == plain.streams


def test_default_effort_and_bad_values(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=1)
    assert codec.resolve_effort(None) == refine_module.DEFAULT_EFFORT
    rgb, ir = smooth_image(64, 64, 3, 3), smooth_image(64, 64, 1, 4)
    assert unpack(codec.compress(rgb=rgb, ir=ir)).effort == refine_module.DEFAULT_EFFORT
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(BadInputError, match="effort must be one of"):
            codec.compress(rgb=rgb, ir=ir, effort=bad)


def test_cli_effort(tiny_env, tmp_path, cli):
    from PIL import Image
    Image.fromarray(smooth_image(64, 64, 3, 5)).save(tmp_path / "vi.png")
    Image.fromarray(smooth_image(64, 64, 1, 6)).save(tmp_path / "ir.png")
    out = tmp_path / "p.mmc"
    r = cli("compress", "--rgb", str(tmp_path / "vi.png"), "--ir", str(tmp_path / "ir.png"), "-o", str(out),
                "--effort", "7")
    assert r.returncode == 2 and "effort must be one of" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = cli("compress", "--rgb", str(tmp_path / "vi.png"), "--ir", str(tmp_path / "ir.png"), "-o", str(out),
                "--effort", "2", "--json")
    assert r.returncode == 0, r.stderr
    import json
    result = json.loads(r.stdout)
    assert result["effort"] == 2 and result["refinement"]["rd_cost_after"] <= result["refinement"]["rd_cost_before"]
    r = cli("info", str(out), "--json")
    assert json.loads(r.stdout)["effort"] == 2


def test_header_effort_byte_is_validated(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=1)
    blob = bytearray(codec.encode(_images("ir"), 1, effort=1)[0])
    c = unpack(bytes(blob))
    hlen = int.from_bytes(blob[6:8], "big")
    assert blob[8 + hlen - 1] == 1                 # the effort byte closes the header
    blob[8 + hlen - 1] = 0
    import struct
    import zlib
    blob[-4:] = struct.pack(">I", zlib.crc32(bytes(blob[:-4])) & 0xFFFFFFFF)
    with pytest.raises(BitstreamError, match="effort"):
        unpack(bytes(blob))
    assert c.effort == 1


def test_lu2022_refinement(tmp_path, monkeypatch):
    """Lu et al.: the reference latents are refined with the current modality's cost in view;
    the refined stream decodes bit-exactly and its real cost is not above the unrefined one."""
    from test_lu2022 import LAMBDAS, TINY, tiny_model
    from mmcodec.models.registry import install_model
    for ca in ("none", "ca"):
        d = tmp_path / ca
        install_model(d, "test-ir-vi/lu2022", "lu2022", {**TINY, "ca": ca}, ["rgb", "ir"], LAMBDAS,
                      tiny_model(ca=ca), default=False)
        monkeypatch.setenv("MMCODEC_MODEL_PATH", str(d))
        codec = mmcodec.load("test-ir-vi/lu2022", quality=3)
        images = _images("ir")
        plain = codec.encode(images, 3, effort=0)[0]
        blob = _check_refined(codec, images, 3, 2)
        assert unpack(plain).effort == 0 and unpack(blob).effort == 2


def test_models_without_refinement_refuse_effort(tmp_path, monkeypatch):
    """A model whose latent codec has no relaxation (channel-slice) refuses effort > 0 in one line
    and defaults to effort 0."""
    from mmcodec.models.registry import install_model
    from mmcodec.models.separate import SeparateCoding
    kwargs = {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 2, "context": "checkerboard"}
    install_model(tmp_path, "ir-vi/tiny-cb", "separate", kwargs, ["rgb", "ir"], [0.002, 0.01], SeparateCoding(**kwargs))
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path))
    codec = mmcodec.load("ir-vi/tiny-cb", quality=1)
    assert codec.resolve_effort(None) == 0
    with pytest.raises(BadInputError, match="no encoder refinement"):
        codec.encode(_images("ir"), 1, effort=1)


def test_ccem_refinement(tmp_path, monkeypatch):
    """CCEM: both latents refined jointly (YUV 4:2:0 path, RGB slices conditioned on the IR
    latent); the stream decodes bit-exactly and costs no more than the unrefined one."""
    from test_ccem import TINY, tiny
    from mmcodec.models.registry import install_model
    torch.manual_seed(0)
    model = tiny()
    kwargs = {"num_rates": 4, **TINY}
    install_model(tmp_path, "ir-vi/ccem-tiny", "ccem", kwargs, ["rgb", "ir"], [0.0018, 0.0043, 0.0104, 0.025], model)
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path))
    codec = mmcodec.load("ir-vi/ccem-tiny", quality=2)
    _check_refined(codec, _images("ir"), 2, 1)


def test_tiled_refinement(tiny_env):
    """Big images: refinement runs window by window over the stream's tiling; the tiled stream
    decodes bit-exactly and costs no more than the unrefined tiled stream."""
    codec = mmcodec.load("ir-vi/tiny", quality=2, tile=64)
    images = {"rgb": load_modality("rgb", smooth_image(150, 200, 3, 7)),
              "ir": load_modality("ir", smooth_image(150, 200, 1, 8))}
    report: dict = {}
    blob, recon = codec.encode(images, 2, effort=1, report=report)
    c = unpack(blob)
    assert c.tiling is not None and c.effort == 1
    assert report["rd_cost_after"] <= report["rd_cost_before"]
    decoded = mmcodec.decompress(blob)
    for m in recon:
        np.testing.assert_array_equal(decoded[m], recon[m])


def test_each_level_decays_its_step_size_to_its_final_fraction():
    levels = refine_module.EFFORT_LEVELS
    assert levels[0].iterations == 0 and all(levels[e].iterations < levels[e + 1].iterations for e in range(3))
    for level in list(levels.values())[1:]:
        steps = [level.step_size(i / 10) for i in range(11)]
        assert steps[0] == pytest.approx(level.lr)
        assert steps[-1] == pytest.approx(level.lr * level.lr_final_fraction)
        assert all(a >= b for a, b in zip(steps, steps[1:]))
    assert refine_module.EFFORT_ITERATIONS == {e: s.iterations for e, s in levels.items()}


def test_shipped_style_weights_keep_the_likelihood_floor(tmp_path, monkeypatch):
    """Weight files store the Gaussian likelihood floor (1e-9) in fp16, i.e. as zero; loaded as
    such, -log2(likelihood) reached infinity and CCEM's refinement went NaN on whole images.
    Loading keeps the architecture's floor."""
    from safetensors.torch import load_file
    from test_ccem import TINY, tiny
    from mmcodec.models.registry import install_model
    torch.manual_seed(0)
    kwargs = {"num_rates": 4, **TINY}
    path = install_model(tmp_path, "ir-vi/ccem-tiny", "ccem", kwargs, ["rgb", "ir"],
                         [0.0018, 0.0043, 0.0104, 0.025], tiny())
    weights = path.with_suffix(".safetensors")
    state = load_file(str(weights))
    floors = [k for k in state if k.endswith("likelihood_lower_bound.bound")]
    assert floors and any(float(state[k]) == 0.0 for k in floors)   # what the file holds
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path))
    model = mmcodec.load("ir-vi/ccem-tiny", quality=2).model
    bounds = [m.bound for name, m in model.named_modules() if name.endswith("likelihood_lower_bound")]
    assert bounds and all(float(b) == pytest.approx(1e-9) for b in bounds)


def test_refinement_stops_when_the_relaxed_cost_is_not_finite():
    """A non-finite relaxed cost ends the optimisation before Adam steps on it: the report says
    so and the latents are the last finite ones."""
    x = {"ir": torch.zeros(1, 1, 8, 8)}
    calls = []

    def relaxed(lat: dict, quantise) -> dict:
        calls.append(1)
        bits = (lat["y"] ** 2).sum() * (float("inf") if len(calls) > 2 else 1.0)
        return {"x_hat": {"ir": torch.zeros(1, 1, 8, 8) + lat["y"].mean()}, "bits": {"ir": bits}}
    init = {"y": torch.ones(1, 2, 2, 2)}
    latents, (first, last, diverged) = refine_module._optimise(
        relaxed, init, x, {"ir": (8, 8)}, 0.01, {}, refine_module.Schedule(10, 0.1, 1.0), 0, False)
    assert diverged and len(calls) == 3 and np.isfinite(last)
    assert torch.isfinite(latents["y"]).all() and not torch.equal(latents["y"], init["y"])
