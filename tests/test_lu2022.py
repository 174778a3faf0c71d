"""Lu et al. 2022 model and the shared window cross-attention block: shapes, exact round
trips, side information, reference handling, warm start from separate coding."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmcodec.errors import BitstreamError
from mmcodec.layers import PatchCrossAttention, SwinCrossAttentionBlock, WindowCrossAttention
from mmcodec.layers.window_attention import relative_position_index
from mmcodec.models.lu2022 import Lu2022
from mmcodec.train.loss import bits_per_pixel, rd_loss

TINY = {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 4, "sa_dim": 12, "align_ch": 8}
LAMBDAS = [0.0018, 0.0043, 0.0104, 0.025]




def synthetic_pair(h: int, w: int, seed: int, rgb_scale: int = 1) -> dict[str, torch.Tensor]:
    """Smooth gradients + blobs + a little noise; the IR image shares the structure."""
    g = torch.Generator().manual_seed(seed)

    def scene(hh: int, ww: int) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.linspace(0, 1, hh), torch.linspace(0, 1, ww), indexing="ij")
        cx, cy = torch.rand(2, generator=g)
        blob = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) * 20)
        return 0.3 * xs + 0.2 * ys + 0.4 * blob

    base = scene(h * rgb_scale, w * rgb_scale)
    rgb = torch.stack([base, base.flip(1) * 0.8, 1 - base]) + 0.03 * torch.randn(3, h * rgb_scale, w * rgb_scale,
                                                                                    generator=g)
    ir_base = base if rgb_scale == 1 else torch.nn.functional.avg_pool2d(base[None, None], rgb_scale)[0, 0]
    ir = (0.7 * ir_base + 0.1)[None] + 0.03 * torch.randn(1, h, w, generator=g)
    return {"rgb": rgb.clamp(0, 1)[None], "ir": ir.clamp(0, 1)[None]}


def tiny_model(seed: int = 0, **overrides) -> Lu2022:
    """A tiny untrained model made sensitive to its inputs: identity-initialised parts get
    small random weights (every cross-modal path changes the output), larger gains give
    non-zero latents, and scaled output layers give images that are not almost black."""
    torch.manual_seed(seed)
    model = Lu2022(**{**TINY, **overrides})
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
        for codec in model.codecs.values():
            codec.gains.gain.mul_(30)
            codec.gains.inverse_gain.div_(30)
            last = codec.feature_decoder[-1] if hasattr(codec, "feature_decoder") else codec.g_s[-1]
            last.weight.mul_(10)
            last.bias.fill_(0.4)
    return model


def ready(model: Lu2022) -> Lu2022:
    model.update(force=True)
    return model.eval()


def sizes(x: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    return {m: tuple(t.shape[-2:]) for m, t in x.items()}


# -- the shared block ---------------------------------------------------------------------
def test_relative_position_index_depends_only_on_offset():
    idx = relative_position_index(4)
    assert idx.shape == (16, 16) and idx.min() == 0 and idx.max() == 48
    # tokens (0,0)->(1,1) and (2,2)->(3,3) have the same offset
    assert idx[0, 5] == idx[10, 15]
    assert idx[0, 5] != idx[5, 0]


def test_window_cross_attention_matches_naive_attention():
    torch.manual_seed(0)
    attn = WindowCrossAttention(dim=6, window=2, heads=3)
    x, ctx = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    out = attn(x, ctx)
    q = attn.to_q(x).view(4, 3, 2).transpose(0, 1)
    k, v = attn.to_kv(ctx).view(4, 2, 3, 2).permute(1, 2, 0, 3)
    bias = attn.relative_position_bias[relative_position_index(2).view(-1)].view(4, 4, 3).permute(2, 0, 1)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(2) + bias).softmax(-1)
    naive = attn.proj((weights @ v).transpose(0, 1).reshape(1, 4, 6))
    torch.testing.assert_close(out, naive)


def test_shifted_window_does_not_leak_across_wrapped_border():
    torch.manual_seed(0)
    block = SwinCrossAttentionBlock(dim=6, heads=3, window=4, shifted=True).eval()
    x, ctx = torch.randn(1, 8, 8, 6), torch.randn(1, 8, 8, 6)
    ctx2 = ctx.clone()
    ctx2[0, 0, 0] += 5.0      # after the cyclic shift (0,0) shares a window with (7,7)
    diff = (block(x, ctx) - block(x, ctx2)).abs().sum(-1)[0]
    assert diff[1, 1] > 0     # same region: sees the change
    assert diff[7, 7] == 0    # wrapped neighbour: masked
    assert diff[4, 4] == 0    # another window entirely


def test_patch_cross_attention_identity_at_init_and_any_size():
    torch.manual_seed(0)
    sa = PatchCrossAttention(in_ch=5, context_ch=7, dim=6, heads=3, window=4)
    x, ctx = torch.randn(2, 5, 10, 14), torch.randn(2, 7, 10, 14)
    torch.testing.assert_close(sa(x, ctx), x)
    torch.nn.init.normal_(sa.recover.weight, std=0.1)
    out = sa(x, ctx)
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert not torch.allclose(out, sa(x, ctx + 1.0))       # keys/values really come from ctx


# -- the model ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", [{}, {"ca": "ea", "sa": "featcat"}, {"ca": "none", "sa": "1"},
                                     {"sa": "6", "window": 8}, {"reference": "ir"}, {"ca": "ca", "sa": "none"}])
def test_forward_shapes_and_likelihood_keys(variant):
    model = tiny_model(**variant)
    x = {m: torch.cat([t, t.flip(-1)]) for m, t in synthetic_pair(64, 64, 0).items()}
    out = model(x, torch.tensor([0, 3]))
    ref = variant.get("reference", "rgb")
    cur = "ir" if ref == "rgb" else "rgb"
    for m in ("rgb", "ir"):
        assert out["x_hat"][m].shape == x[m].shape
    assert set(out["likelihoods"][ref]) == {"y", "z"}
    expected = {"y", "z", "side"} if variant.get("ca", "ca") == "ca" else {"y", "z"}
    assert set(out["likelihoods"][cur]) == expected
    terms = rd_loss(out, x, torch.tensor(LAMBDAS)[[0, 3]])
    terms["loss"].backward()
    assert math.isfinite(float(terms["loss"]))


def test_side_information_counted_at_16_bits_per_value():
    model = tiny_model()
    x = synthetic_pair(64, 64, 0)
    lik = model(x, torch.tensor([1]))["likelihoods"]["ir"]
    side_bpp = bits_per_pixel({"side": lik["side"]}, 64 * 64)
    assert torch.allclose(side_bpp, torch.tensor([2 * TINY["align_ch"] * 16 / (64 * 64)]))


@pytest.mark.parametrize("variant", [{}, {"sa": "6", "window": 8, "ca": "ea"}, {"reference": "ir"}])
def test_round_trip_is_bit_exact(variant):
    model = ready(tiny_model(**variant))
    x = synthetic_pair(64, 128, 1)
    c = model.compress(x, rate=2)
    expected_side = 4 * TINY["align_ch"] if variant.get("ca", "ca") == "ca" else 0
    assert len(c.side) == expected_side
    out = model.decompress(c.streams, c.side, sizes(x), rate=2)
    for m in ("rgb", "ir"):
        assert torch.equal(out[m], c.x_hat[m])


def test_two_to_one_geometry_round_trip():
    model = ready(tiny_model(ratio=2))
    assert model.codecs["ir"].downsampling == 8
    x = synthetic_pair(64, 64, 2, rgb_scale=2)
    out = model(x, torch.tensor([1]))
    assert out["x_hat"]["rgb"].shape == (1, 3, 128, 128) and out["x_hat"]["ir"].shape == (1, 1, 64, 64)
    c = model.compress(x, rate=1)
    dec = model.decompress(c.streams, c.side, sizes(x), rate=1)
    assert all(torch.equal(dec[m], c.x_hat[m]) for m in ("rgb", "ir"))
    # Padding to multiples of 64 can break the exact 2:1 ratio: reference features are fitted.
    x = {"rgb": synthetic_pair(64, 64, 3)["rgb"][..., :, :64].repeat(1, 1, 3, 2)[..., :192, :128],
         "ir": synthetic_pair(128, 64, 3)["ir"]}
    c = model.compress(x, rate=1)
    dec = model.decompress(c.streams, c.side, sizes(x), rate=1)
    assert dec["ir"].shape == (1, 1, 128, 64) and torch.equal(dec["ir"], c.x_hat["ir"])
    with pytest.raises(ValueError):
        Lu2022(**{**TINY, "reference": "ir", "ratio": 2})


def test_side_information_is_read_back_from_side():
    model = ready(tiny_model())
    x = synthetic_pair(64, 64, 3)
    c = model.compress(x, rate=1)
    values = np.frombuffer(c.side, dtype="<f2").copy()
    values[0] += 0.5           # a different, still finite gamma
    changed = model.decompress(c.streams, values.tobytes(), sizes(x), rate=1)
    assert torch.equal(changed["rgb"], c.x_hat["rgb"])
    assert not torch.equal(changed["ir"], c.x_hat["ir"])
    with pytest.raises(BitstreamError):
        model.decompress(c.streams, c.side[:-2], sizes(x), rate=1)
    values[1] = np.inf
    with pytest.raises(BitstreamError):
        model.decompress(c.streams, values.tobytes(), sizes(x), rate=1)


def test_only_reference_reads_only_its_stream():
    model = ready(tiny_model())
    assert model.requires("rgb") == {"rgb"}
    assert model.requires("ir") == {"rgb", "ir"}
    x = synthetic_pair(64, 64, 4)
    c = model.compress(x, rate=0)
    out = model.decompress({"rgb": c.streams["rgb"]}, b"", sizes(x), rate=0, only="rgb")
    assert set(out) == {"rgb"} and torch.equal(out["rgb"], c.x_hat["rgb"])
    only_ir = model.decompress(c.streams, c.side, sizes(x), rate=0, only="ir")
    assert set(only_ir) == {"ir"} and torch.equal(only_ir["ir"], c.x_hat["ir"])


def test_reference_keys_match_separate_coding_and_warm_start(tmp_path):
    from mmcodec.models.registry import save_weights
    from mmcodec.models.separate import SeparateCoding
    from mmcodec.train.warm_start import warm_start
    torch.manual_seed(1)
    separate = SeparateCoding(("rgb", "ir"), N=16, M=24, num_rates=4)
    model = tiny_model()
    sep_keys = {k for k in separate.state_dict() if k.startswith("codecs.rgb.")}
    assert sep_keys == {k for k in model.state_dict() if k.startswith("codecs.rgb.")}
    path = tmp_path / "separate.safetensors"
    save_weights(separate, path)
    copied = warm_start(model, str(path), {"codecs.": "codecs."})
    state, sep_state = model.state_dict(), separate.state_dict()
    for k in ("codecs.rgb.g_a.0.weight", "codecs.ir.g_a.2.weight", "codecs.ir.latent_codec.h_s.0.weight"):
        torch.testing.assert_close(state[k], sep_state[k].half().float())
    # Shapes that changed (encoder input, decoder output) keep their own initialisation.
    assert state["codecs.ir.g_a.0.weight"].shape != sep_state["codecs.ir.g_a.0.weight"].shape
    assert copied > len(sep_keys)
    # Stage "current" trains the conditional codec only (like freeze ["codecs.rgb."]).
    current = {id(p) for p in model.stage_parameters("current")}
    names = [n for n, p in model.named_parameters() if id(p) in current]
    assert names and all(n.startswith("codecs.ir.") for n in names)


# -- through the .mmc Codec ---------------------------------------------------------------
@pytest.fixture
def installed_codec(tmp_path, monkeypatch):
    from mmcodec.codec import Codec
    from mmcodec.models.registry import find_model, install_model
    kwargs = dict(TINY)
    install_model(tmp_path, "test-ir-vi/lu2022", "lu2022", kwargs, ["rgb", "ir"], LAMBDAS, tiny_model(),
                  description="tiny untrained Lu 2022 for tests")
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path))
    return Codec(find_model("test-ir-vi/lu2022"), quality=2)


def as_arrays(pair: dict[str, torch.Tensor], h: int, w: int) -> dict[str, np.ndarray]:
    rgb = (pair["rgb"][0, :, :h, :w].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ir = (pair["ir"][0, 0, :h, :w].numpy() * 255).round().astype(np.uint8)
    return {"rgb": rgb, "ir": ir}


def test_codec_round_trip_and_only(installed_codec):
    from mmcodec.bitstream import pack, unpack
    a = as_arrays(synthetic_pair(64, 128, 5), 60, 90)      # padded to 64x128 inside
    blob = installed_codec.compress(**a)
    c = unpack(blob)
    assert len(c.side) == 4 * TINY["align_ch"]
    out = installed_codec.decompress(blob)
    assert out["rgb"].shape == (60, 90, 3) and out["ir"].shape == (60, 90)
    # --only rgb works without the IR stream (an emptied IR payload does not matter)
    c.streams["ir"] = [b"", b""]
    stripped = pack(c)
    only = installed_codec.decompress(stripped, only="rgb")
    assert set(only) == {"rgb"} and np.array_equal(only["rgb"], out["rgb"])
    with pytest.raises(BitstreamError):
        installed_codec.decompress(stripped)


def test_codec_corrupted_side_and_wrong_reference_fail_cleanly(installed_codec):
    from mmcodec.bitstream import pack, unpack
    first = unpack(installed_codec.compress(**as_arrays(synthetic_pair(64, 64, 6), 64, 64)))
    other = unpack(installed_codec.compress(**as_arrays(synthetic_pair(64, 64, 7), 64, 64)))
    # corrupted side information: IR differs from the encoder's reconstruction
    side = np.frombuffer(first.side, dtype="<f2").copy()
    side[:4] *= 1.5
    side[4:8] += 0.25
    bad_side = unpack(pack(first))
    bad_side.side = side.tobytes()
    with pytest.raises(BitstreamError):
        installed_codec.decompress(pack(bad_side), only="ir")
    assert set(installed_codec.decompress(pack(bad_side), only="rgb")) == {"rgb"}
    # the IR stream of one pair decoded against another pair's reference stream
    swapped = unpack(pack(first))
    swapped.streams["rgb"] = other.streams["rgb"]
    for only in (None, "ir"):
        with pytest.raises(BitstreamError):
            installed_codec.decompress(pack(swapped), only=only)


def test_paper_preset_builds_codes_and_trains():
    """preset="paper": N = M = 192, autoregressive context both sides, window 8 (issue 24)."""
    from mmcodec.train.loss import rd_loss
    torch.manual_seed(0)
    model = Lu2022(preset="paper", num_rates=2)
    assert model.codecs["ir"].latent_codec.__class__.__name__ == "AutoregressiveMeanScale"
    assert model.codecs["rgb"].latent_codec.__class__.__name__ == "AutoregressiveMeanScale"
    assert model.codecs["ir"].decoder_cross["1"].window == 8 and model.codecs["ir"].g_a[0].out_channels == 192
    x = {"rgb": torch.rand(1, 3, 64, 64), "ir": torch.rand(1, 1, 64, 64)}
    optimiser = torch.optim.Adam(model.stage_parameters("joint"), lr=1e-4)
    loss = rd_loss(model(x, torch.tensor([1])), x, torch.tensor([0.01]))["loss"]
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    model.update(force=True)
    model.eval()
    coded = model.compress(x, 1)
    decoded = model.decompress(coded.streams, coded.side, {"rgb": (64, 64), "ir": (64, 64)}, 1)
    for m in x:
        assert torch.equal(decoded[m], coded.x_hat[m])
    with pytest.raises(ValueError, match="preset"):
        Lu2022(preset="huge")
    assert Lu2022(preset="paper", N=32, M=48).codecs["ir"].g_a[0].out_channels == 32   # explicit kwargs win
