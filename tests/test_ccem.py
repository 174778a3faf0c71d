"""CCEM (channel-wise cross-modality entropy model): shapes, exact rANS round trips,
IR decoding alone, the reusable slice codec with and without context, training stages,
ablation switches, configs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcodec.crossmodal.entropy_context import CrossModalSliceCodec
from mmcodec.data.images import load_modality
from mmcodec.latent_codecs import ChannelSliceCodec, split_channels
from mmcodec.layers import AgentAttention, FusionBlock, LiteTransformer
from mmcodec.models.ccem import CCEM, rgb_to_yuv420, yuv420_to_rgb
from mmcodec.models.registry import build_model, install_model
from mmcodec.train.config import load_config
from mmcodec.train.loss import rd_loss

from conftest import smooth_image

TINY = {"N": 16, "M": 20, "M_ir": 20, "support_ch": 32, "attn_dim": 16, "window": 4, "outer_width": 8}
ROOT = Path(__file__).resolve().parent.parent




def tiny(**kw) -> CCEM:
    torch.manual_seed(0)
    return CCEM(num_rates=4, **TINY, **kw)


def make_context_matter(model: torch.nn.Module) -> None:
    """Zero-initialised fusion outputs make a fresh model ignore its context; give them
    weights so the tests can see the context being used."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, FusionBlock):
            with torch.no_grad():
                m.recover.weight.copy_(torch.randn(m.recover.weight.shape, generator=g) * 0.3)


def pair(h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rgb = torch.from_numpy(smooth_image(h, w, 3, seed)).permute(2, 0, 1).float()[None] / 255
    ir = torch.from_numpy(smooth_image(h, w, 1, seed + 1)).float()[None, None] / 255
    return {"rgb": rgb, "ir": ir}


def coded(model: CCEM, h: int = 128, w: int = 128, rate: int = 2):
    model.eval().update(force=True)
    x = pair(h, w)
    return x, model.compress(x, rate), {"rgb": (h, w), "ir": (h, w)}


def test_forward_shapes_and_likelihood_keys():
    model = tiny()
    x = {k: torch.cat([v, v.flip(-1)]) for k, v in pair(64, 64).items()}
    out = model(x, torch.tensor([0, 3]))
    assert out["x_hat"]["rgb"].shape == (2, 3, 64, 64) and out["x_hat"]["ir"].shape == (2, 1, 64, 64)
    for m in ("rgb", "ir"):
        assert set(out["likelihoods"][m]) == {"y", "z"}
        assert out["likelihoods"][m]["y"].shape == (2, 20, 4, 4)
        assert out["likelihoods"][m]["z"].shape == (2, 16, 1, 1)
    terms = rd_loss(out, x, torch.tensor([0.01, 0.02]))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert model.enc_ir[0][0].conv1.weight.grad is not None


def test_round_trip_is_bit_exact_and_every_slice_is_coded():
    model = tiny()
    make_context_matter(model)
    x, c, sizes = coded(model)
    assert {m: len(s) for m, s in c.streams.items()} == {"rgb": 6, "ir": 6}   # z + 5 slices
    assert all(len(s) > 0 for parts in c.streams.values() for s in parts)
    out = model.decompress(c.streams, c.side, sizes, 2)
    for m in ("rgb", "ir"):
        assert torch.equal(out[m], c.x_hat[m])
    assert out["rgb"].shape == (1, 3, 128, 128) and 0 <= out["rgb"].min() and out["rgb"].max() <= 1
    only_rgb = model.decompress(c.streams, c.side, sizes, 2, only="rgb")
    assert set(only_rgb) == {"rgb"} and torch.equal(only_rgb["rgb"], c.x_hat["rgb"])


def test_ir_decodes_alone_and_rgb_needs_ir():
    model = tiny()
    make_context_matter(model)
    assert model.requires("ir") == {"ir"} and model.requires("rgb") == {"rgb", "ir"}
    _, c, sizes = coded(model, 64, 128)
    out = model.decompress({"ir": c.streams["ir"]}, b"", {"ir": sizes["ir"]}, 2, only="ir")
    assert set(out) == {"ir"} and torch.equal(out["ir"], c.x_hat["ir"])
    with pytest.raises(KeyError):
        model.decompress({"rgb": c.streams["rgb"]}, b"", sizes, 2, only="rgb")


def test_rate_changes_the_bitstream():
    model = tiny()
    model.eval().update(force=True)
    x = pair(64, 64)
    low, high = (sum(len(s) for p in model.compress(x, r).streams.values() for s in p) for r in (0, 3))
    assert low < high


def test_slice_codec_with_and_without_context():
    torch.manual_seed(0)
    assert split_channels(96, 5) == [20, 19, 19, 19, 19]
    y = torch.randn(1, 24, 8, 8) * 4
    context = torch.randn(1, 12, 8, 8)
    plain = ChannelSliceCodec(24, 16, 5, 32, lceb=False)
    with pytest.raises(ValueError):
        plain(y, context=context)
    codec = CrossModalSliceCodec(24, 16, 12, 5, 32, lceb=True, lceb_dim=16, context_dim=16)
    make_context_matter(codec)
    for c in (plain, codec):
        y_hat, lik = c(y)
        assert y_hat.shape == y.shape and lik["y"].shape == y.shape
    codec.eval()
    _, lik_with = codec(y, context=context)
    _, lik_without = codec(y)
    assert not torch.equal(lik_with["y"], lik_without["y"])    # the context changes the prior
    for c in (plain, codec):
        c.update(force=True)
    strings, y_hat = plain.compress(y)
    assert torch.equal(plain.decompress(strings, (8, 8)), y_hat)
    strings, y_hat = codec.compress(y, context=context)
    assert len(strings) == 6
    assert torch.equal(codec.decompress(strings, (8, 8), context=context), y_hat)
    assert (y_hat - y).abs().max() <= 1.0                        # rounding error + bounded LRP
    # Without (or with another) context the decoder goes out of step: the context is needed.
    assert not torch.equal(codec.decompress(strings, (8, 8), context=context + 1), y_hat)
    strings_none, y_hat_none = codec.compress(y)
    assert torch.equal(codec.decompress(strings_none, (8, 8)), y_hat_none)


def test_layers_accept_any_grid():
    attn = AgentAttention(16, heads=4, agents=3)
    q, kv = torch.randn(2, 16, 5, 7), torch.randn(2, 16, 10, 6)
    assert attn(q, kv).shape == (2, 16, 5, 7) and attn(q).shape == (2, 16, 5, 7)
    lt = LiteTransformer(10, 6, dim=16, heads=2, kv_pool=2)
    assert lt(torch.randn(1, 10, 3, 5)).shape == (1, 6, 3, 5)


def test_yuv420_conversion():
    flat = torch.rand(1, 3, 1, 1).expand(1, 3, 8, 8)       # constant colour survives 4:2:0 exactly
    y, u, v = rgb_to_yuv420(flat)
    assert y.shape == (1, 1, 8, 8) and u.shape == v.shape == (1, 1, 4, 4)
    assert torch.allclose(yuv420_to_rgb(y, u, v), flat, atol=1e-5)
    grey = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)
    _, u, v = rgb_to_yuv420(grey)
    assert torch.allclose(u, torch.full_like(u, 0.5), atol=1e-6) and torch.allclose(v, torch.full_like(v, 0.5), atol=1e-6)


def test_stage1_trains_the_rgb_path_alone():
    model = tiny()
    params = {id(p) for p in model.stage_parameters("stage1")}
    names = {n for n, p in model.named_parameters() if id(p) in params}
    assert model.stage == "stage1"
    assert names and all(not n.startswith(("enc_ir", "dec_ir", "cross", "latent_codecs.ir", "gains.ir"))
                         for n in names)
    assert not any(".fusion." in n or "context_extractor" in n for n in names)
    x = pair(64, 64)
    out = model({"rgb": x["rgb"]}, torch.tensor([1]))
    assert set(out["x_hat"]) == set(out["likelihoods"]) == {"rgb"}
    out = model(x, torch.tensor([1]))                          # IR given anyway: no IR terms
    assert set(out["likelihoods"]) == {"rgb"} and torch.equal(out["x_hat"]["ir"], x["ir"])
    rd_loss(out, x, torch.tensor([0.01]))["loss"].backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("enc_ir", "latent_codecs.ir")))
    # The joint stage starts exactly where stage 1 left off (zero-initialised cross-modal parts).
    model.eval()
    stage1 = model({"rgb": x["rgb"]}, torch.tensor([1]))
    model.stage_parameters("joint")
    joint = model(x, torch.tensor([1]))
    assert torch.equal(stage1["x_hat"]["rgb"], joint["x_hat"]["rgb"])
    assert torch.equal(stage1["likelihoods"]["rgb"]["y"], joint["likelihoods"]["rgb"]["y"])
    with pytest.raises(ValueError):
        model.stage_parameters("stage3")


def test_stage1_y_feeds_and_trains_the_luma_alone():
    """The paper's stage 1: Y in, Y out; the chroma branches neither see chroma nor train."""
    model = tiny()
    names = {n for n, p in model.named_parameters() if id(p) in {id(q) for q in model.stage_parameters("stage1-y")}}
    assert model.stage == "stage1-y" and any(n.startswith("enc_y.") for n in names)
    assert not any(n.startswith(("enc_u.", "enc_v.", "dec_u.", "dec_v.", "enc_ir", "latent_codecs.ir")) for n in names)
    x = pair(64, 64)
    out = model(x, torch.tensor([1]))
    assert set(out["likelihoods"]) == {"rgb"}
    # The reconstruction carries the input's chroma: its U and V are those of the input's own
    # 4:2:0 round trip, whatever the decoded Y.
    luma, u, v = rgb_to_yuv420(x["rgb"])
    _, u_hat, v_hat = rgb_to_yuv420(out["x_hat"]["rgb"])
    _, u_trip, v_trip = rgb_to_yuv420(yuv420_to_rgb(luma, u, v))
    assert torch.allclose(u_hat, u_trip, atol=1e-5) and torch.allclose(v_hat, v_trip, atol=1e-5)
    # Chroma does not reach the latent: two images with the same Y and other colours code alike.
    recoloured = yuv420_to_rgb(rgb_to_yuv420(x["rgb"])[0], 1 - u, 1 - v)
    model.eval()
    a = model({"rgb": x["rgb"]}, torch.tensor([1]))["likelihoods"]["rgb"]["y"]
    b = model({"rgb": recoloured}, torch.tensor([1]))["likelihoods"]["rgb"]["y"]
    assert torch.allclose(a, b, atol=1e-4)
    model.train()
    rd_loss(model(x, torch.tensor([1])), x, torch.tensor([0.01]))["loss"].backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads and not any(n.startswith(("dec_u.", "dec_v.")) for n in grads)


@pytest.mark.parametrize("kw, needs_rgb, needs_ir", [
    ({"lceb": False, "lcfb": False}, {"rgb"}, {"ir"}),
    ({"lceb": True, "lcfb": False}, {"rgb"}, {"ir"}),
    ({"lceb": False, "lcfb": True}, {"rgb", "ir"}, {"ir"}),
    ({"direction": "rgb_to_ir"}, {"rgb"}, {"ir", "rgb"}),
    ({"exchange_attention": "full"}, {"rgb", "ir"}, {"ir"}),
])
def test_ablation_variants_round_trip(kw, needs_rgb, needs_ir):
    model = tiny(**kw)
    make_context_matter(model)
    assert model.requires("rgb") == needs_rgb and model.requires("ir") == needs_ir
    _, c, sizes = coded(model, 64, 64, rate=1)
    for m, needed in (("rgb", needs_rgb), ("ir", needs_ir)):
        out = model.decompress({k: c.streams[k] for k in needed}, b"", sizes, 1, only=m)
        assert torch.equal(out[m], c.x_hat[m])


def test_exchange_attention_choice():
    """The encoder exchange is agent attention by default (the shipped weights' names) or the
    paper's plain cross-attention, whose every query sees every context position."""
    from mmcodec.layers import AgentAttention, GlobalAttention
    assert isinstance(tiny().cross["rgb"].attention, AgentAttention)
    full = tiny(exchange_attention="full")
    block = full.cross["rgb"]
    assert isinstance(block.attention, GlobalAttention) and block.attention.kv_pool == 1
    make_context_matter(full)
    query, context = torch.randn(1, 20, 6, 6), torch.randn(1, 20, 6, 6)
    moved = context.clone()
    moved[..., 5, 5] += 3.0                       # one far corner of the context
    with torch.no_grad():
        a, b = block(query, context), block(query, moved)
    assert (a - b)[..., 0, 0].abs().max() > 1e-6  # reaches the opposite corner's query
    with pytest.raises(ValueError, match="fusion attention"):
        tiny(exchange_attention="windowed")


def test_configs_build_and_match_the_trainer():
    paths = sorted((ROOT / "configs").glob("ir-vi-ccem*.json"))
    assert len(paths) >= 6
    for path in paths:
        cfg = load_config(str(path))
        assert cfg.arch == "ccem" and cfg.name.startswith("ir-vi/ccem")
        json.dumps(cfg.kwargs)
        assert cfg.kwargs["num_rates"] == len(cfg.lambdas)
        if cfg.kwargs.get("preset") != "paper":
            build_model(cfg.arch, cfg.kwargs)
    main = load_config(str(ROOT / "configs" / "ir-vi-ccem.json"))
    assert main.lambdas == [0.0018, 0.0043, 0.0104, 0.025] and main.batch == 8 and main.crop == 128
    assert main.train_split == "ir-vi-train" and main.name == "ir-vi/ccem"
    stage1 = load_config(str(ROOT / "configs" / "ir-vi-ccem-stage1.json"))
    assert stage1.stage == "stage1" and stage1.modalities == ["rgb"]
    assert main.init_from == f"{stage1.out}/checkpoint.pt"


DECODE = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[2]))
import mmcodec
out = mmcodec.decompress(open(sys.argv[1], 'rb').read())
print(*(k + ':' + hashlib.sha256(out[k].tobytes()).hexdigest() for k in sorted(out)))
"""


def _install_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mmcodec

    kwargs = {"num_rates": 2, **TINY}
    torch.manual_seed(0)
    model = CCEM(**kwargs)
    make_context_matter(model)
    install_model(tmp_path / "models", "ir-vi/ccem-tiny", "ccem", kwargs, ["rgb", "ir"], [0.002, 0.01], model)
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path / "models"))
    return mmcodec.load("ir-vi/ccem-tiny", quality=2)


def test_installed_model_through_the_container(tmp_path, monkeypatch):
    """Codec API: fp16-stored weights, CRC-checked exact decode, --only ir."""
    codec = _install_tiny(tmp_path, monkeypatch)
    blob = codec.compress(rgb=smooth_image(70, 100, 3, 5), ir=smooth_image(70, 100, 1, 6))
    full = codec.decompress(blob)                    # raises if a CRC differs
    only = codec.decompress(blob, only="ir")
    assert full["rgb"].shape == (70, 100, 3) and np.array_equal(only["ir"], full["ir"])


def test_thread_count_changes_neither_the_stream_nor_the_decoded_image(tmp_path, monkeypatch):
    """Tiny CCEM in the normal suite (the fresh-process version below is `slow`): encoding
    with 1 and with 2 torch threads writes the same bytes, and decoding with the other thread
    count gives the encoder's reconstruction. Attention, softmax and the YUV conversion must
    all run under the codec's single-thread guard."""
    codec = _install_tiny(tmp_path, monkeypatch)
    images = {"rgb": load_modality("rgb", smooth_image(128, 192, 3, 7)),
              "ir": load_modality("ir", smooth_image(128, 192, 1, 8))}
    effort = codec.resolve_effort(None)  # the effort compress() uses
    coded = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)   # conftest restores the count after the test
        coded[threads] = codec.encode(images, effort=effort)
    assert coded[1][0] == coded[2][0]
    for threads, other in ((1, 2), (2, 1)):
        torch.set_num_threads(other)
        decoded = codec.decompress(coded[threads][0])
        assert decoded.keys() == coded[threads][1].keys()
        assert all(np.array_equal(decoded[m], coded[threads][1][m]) for m in decoded)


@pytest.mark.slow
def test_fresh_process_other_thread_count_decodes_identically(tmp_path, monkeypatch):
    """Attention and softmax in the entropy model must not make decoding thread-dependent."""
    import os

    codec = _install_tiny(tmp_path, monkeypatch)
    path = tmp_path / "p.mmc"
    path.write_bytes(codec.compress(rgb=smooth_image(128, 192, 3, 7), ir=smooth_image(128, 192, 1, 8)))
    outs = []
    for threads in (1, 2):
        r = subprocess.run([sys.executable, "-c", DECODE, str(path), str(threads)], capture_output=True,
                           text=True, env=dict(os.environ))
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
