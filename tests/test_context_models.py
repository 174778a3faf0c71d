"""Spatial-context latent codecs (mmcodec.latent_codecs): checkerboard (He et al. 2021) and
serial autoregressive (Minnen et al. 2018). Shapes, exact round trips, the information each
position may use, thread-count independence, warm start from the hyperprior, and whole
models through the `.mmc` Codec."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.latent_codecs.rans_guard import guard_entropy_decoders
from mmcodec.errors import BitstreamError
from mmcodec.latent_codecs import (AutoregressiveMeanScale, CheckerboardMeanScale, MeanScaleHyperprior,
                                   build_latent_codec, checkerboard_anchors, decode_hyper_latent, quantise_params,
                                   scale_indexes)
from mmcodec.models.lu2022 import Lu2022
from mmcodec.models.registry import install_model
from mmcodec.models.separate import SeparateCoding
from mmcodec.models.single import SingleModalityCodec

from conftest import TINY, TINY_LAMBDAS, smooth_image

torch.set_num_threads(1)
CONTEXT_CODECS = {"checkerboard": CheckerboardMeanScale, "autoregressive": AutoregressiveMeanScale}
LATENT_HW = (8, 12)   # non-square; h_a/h_s need multiples of 4


def make_context_active(latent_codec: torch.nn.Module, seed: int = 0) -> None:
    """The context network's last layer starts at zero (warm-start identity); give it
    weights so that the context really changes the entropy parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        last = latent_codec.entropy_parameters[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.05)
        last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 0.5)


def tiny_codec(context: str, seed: int = 0, M: int = 24, N: int = 16, blind_hyperprior: bool = False):
    torch.manual_seed(seed)
    codec = CONTEXT_CODECS[context](M, N)
    make_context_active(codec, seed)
    if blind_hyperprior:  # z no longer depends on y: only the spatial context can
        with torch.no_grad():
            codec.h_a[-1].weight.zero_()
    codec.update(force=True)
    return codec.eval()


def random_latent(seed: int, M: int = 24, hw: tuple[int, int] = LATENT_HW) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a spread of magnitudes: many zero symbols, some large ones (escape coding)
    return torch.randn(1, M, *hw, generator=g) * torch.rand(1, M, 1, 1, generator=g) * 8


# -- the latent codecs ----------------------------------------------------------------------
@pytest.mark.parametrize("context", CONTEXT_CODECS)
@pytest.mark.parametrize("training", [True, False])
def test_forward_shapes_and_likelihoods(context, training):
    codec = tiny_codec(context).train(training)
    y = random_latent(0).repeat(2, 1, 1, 1).requires_grad_()
    y_hat, likelihoods = codec(y)
    assert y_hat.shape == y.shape
    assert set(likelihoods) == {"y", "z"}
    assert likelihoods["y"].shape == y.shape and likelihoods["z"].shape == (2, 16, 2, 3)
    for t in likelihoods.values():
        assert (t > 0).all() and (t <= 1).all()
    # rounding around the means, straight-through: within half a step, gradients reach y
    assert (y_hat - y).abs().max() <= 0.5 + 1e-5
    (-torch.log2(likelihoods["y"]).sum() + y_hat.square().sum()).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert codec.entropy_parameters[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("context", CONTEXT_CODECS)
@pytest.mark.parametrize("seed", [1, 2])
def test_decompress_reproduces_encoder_y_hat_exactly(context, seed):
    codec = tiny_codec(context, seed)
    y = random_latent(seed)
    strings, y_hat = codec.compress(y)
    assert len(strings) == (3 if context == "checkerboard" else 2)
    assert (y_hat - y).abs().max() <= 0.5 + 1e-5
    assert torch.round(y_hat).abs().max() >= 3          # not a trivial all-zero latent
    decoded = codec.decompress(strings, LATENT_HW)
    assert torch.equal(decoded, y_hat)


def test_autoregressive_serial_params_are_the_trained_function():
    """The serial coder evaluates the network position by position; it must compute what
    the parallel training path computes (up to float rounding and the 1/256 grid), or the
    trained model would be coded with other probabilities than it learned."""
    codec = tiny_codec("autoregressive", seed=3)
    y = random_latent(3)
    strings, y_hat = codec.compress(y)
    hyper = codec.h_s(decode_hyper_latent(codec.entropy_bottleneck, strings[1], LATENT_HW))
    with torch.no_grad():
        scales, means = codec._params(hyper, codec.context_prediction(y_hat))
    # y_hat = symbol + quantised mean: recover the serial means from the decoded values
    serial_means = y_hat - torch.round(y_hat - quantise_params(means))
    assert (serial_means - means).abs().max() <= 1 / 512 + 1e-4
    assert not torch.allclose(means, hyper.chunk(2, 1)[1], atol=0.05)   # the context mattered


def test_checkerboard_anchor_pass_ignores_non_anchor_values():
    codec = tiny_codec("checkerboard", seed=4, blind_hyperprior=True)
    anchors = checkerboard_anchors(LATENT_HW)
    y1 = random_latent(4)
    y2 = torch.where(anchors, y1, y1 + 5 * torch.randn_like(y1))
    for training in (False, True):
        codec.train(training)
        torch.manual_seed(0)
        _, lik1 = codec(y1)
        torch.manual_seed(0)   # the same quantisation noise in training mode
        _, lik2 = codec(y2)
        assert torch.equal(lik1["y"][..., anchors], lik2["y"][..., anchors])
        assert not torch.allclose(lik1["y"][..., ~anchors], lik2["y"][..., ~anchors])
    codec.eval()
    (anchor1, other1, _), _ = codec.compress(y1)
    (anchor2, other2, _), _ = codec.compress(y2)
    assert anchor1 == anchor2 and other1 != other2


def test_non_anchors_see_the_anchors():
    codec = tiny_codec("checkerboard", seed=5, blind_hyperprior=True)
    anchors = checkerboard_anchors(LATENT_HW)
    y1 = random_latent(5)
    y2 = torch.where(anchors, y1 + 3.0, y1)
    _, lik1 = codec(y1)
    _, lik2 = codec(y2)
    assert not torch.allclose(lik1["y"][..., ~anchors], lik2["y"][..., ~anchors])


def test_autoregressive_context_is_causal():
    codec = tiny_codec("autoregressive", seed=6, blind_hyperprior=True)
    H, W = LATENT_HW
    i, j = 3, 5
    y1 = random_latent(6)
    y2 = y1.clone()
    y2[..., i, j] += 4.0
    _, lik1 = codec(y1)
    _, lik2 = codec(y2)
    changed = (lik1["y"] != lik2["y"]).any(1)[0]          # (H, W): positions whose likelihood moved
    raster = torch.arange(H * W).view(H, W)
    assert not changed[raster < i * W + j].any()           # nothing before (i, j) in raster order
    assert changed[i, j + 1] and changed[i + 1, j - 2] and changed[i + 2, j + 2]   # the 5x5 mask's reach
    assert not changed[i + 3:].any() and not changed[i, j + 3:].any()


@pytest.mark.parametrize("context", CONTEXT_CODECS)
def test_latent_size_not_a_multiple_of_4_is_refused(context):
    # h_a/h_s work in steps of 4: a 5x7 latent would silently get an 8x8 entropy model
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny_codec(context).compress(random_latent(0, hw=(5, 7)))


def test_masked_convolution_mask_a():
    mask = AutoregressiveMeanScale(12, 8).context_prediction.mask
    expected = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0] * 5, [0] * 5],
                            dtype=mask.dtype)
    assert torch.equal(mask, expected)


def test_scale_indexes_match_compressai_build_indexes():
    gc = tiny_codec("autoregressive").gaussian_conditional
    table = gc.scale_table
    scales = torch.cat([torch.rand(5000) * 300, table, torch.nextafter(table, table + 1),
                        torch.nextafter(table, table - 1), torch.tensor([0.0, -1.0, 1e9])])
    assert torch.equal(scale_indexes(gc, scales).int(), gc.build_indexes(scales))


@pytest.mark.parametrize("context", CONTEXT_CODECS)
@pytest.mark.parametrize("widths", [(24, 16), (96, 64)])
def test_decode_with_one_or_two_threads_gives_the_same_latent(context, widths):
    M, N = widths
    codec = tiny_codec(context, seed=7, M=M, N=N)
    y = random_latent(7, M=M)
    torch.set_num_threads(1)
    strings, y_hat = codec.compress(y)
    decoded = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        decoded[threads] = codec.decompress(strings, LATENT_HW)
    torch.set_num_threads(1)
    assert torch.equal(decoded[1], y_hat) and torch.equal(decoded[2], y_hat)


@pytest.mark.parametrize("context", CONTEXT_CODECS)
def test_hyperprior_weights_warm_start_a_context_codec_as_the_same_model(context):
    """Shared tensors keep the hyperprior's names; the new context starts as a no-op."""
    torch.manual_seed(8)
    plain = SingleModalityCodec(1, 16, 24, num_rates=2).eval()
    with_context = SingleModalityCodec(1, 16, 24, num_rates=2, context=context).eval()
    missing, unexpected = with_context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert {k.split(".")[1] for k in missing} == {"context_prediction", "entropy_parameters"}
    x = torch.rand(1, 1, 64, 64)
    out_plain, out_context = plain(x, torch.tensor([1])), with_context(x, torch.tensor([1]))
    assert torch.equal(out_plain["x_hat"], out_context["x_hat"])
    assert torch.equal(out_plain["likelihoods"]["y"], out_context["likelihoods"]["y"])


def test_unknown_context_is_refused():
    with pytest.raises(ValueError, match="context must be one of"):
        build_latent_codec("pixelcnn", 24, 16)
    with pytest.raises(ValueError, match="reference_context"):
        Lu2022(N=16, M=24, reference_context="slices")
    assert isinstance(build_latent_codec("hyperprior", 24, 16), MeanScaleHyperprior)


# -- whole models -----------------------------------------------------------------------------
def sensitised(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained tiny models give latents of ~0; larger gains and an active context make
    the round trips exercise real symbols and context-dependent probabilities."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, "gains"):
                module.gains.gain.mul_(30)
                module.gains.inverse_gain.div_(30)
            if hasattr(module, "entropy_parameters"):
                make_context_active(module)
    return model


@pytest.fixture(scope="module")
def context_model_dir(tmp_path_factory) -> object:
    d = tmp_path_factory.mktemp("context_models")
    for context in CONTEXT_CODECS:
        torch.manual_seed(9)
        kwargs = {"modalities": ["rgb", "ir"], **TINY, "context": context}
        install_model(d, f"ir-vi/tiny-{context}", "separate", kwargs, ["rgb", "ir"], TINY_LAMBDAS,
                      sensitised(SeparateCoding(**kwargs)))
    return d


@pytest.mark.parametrize("context", CONTEXT_CODECS)
def test_codec_round_trip(context, context_model_dir, monkeypatch):
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(context_model_dir))
    codec = mmcodec.load(f"ir-vi/tiny-{context}", quality=2)
    rgb, ir = smooth_image(70, 90, 3, 1), smooth_image(70, 90, 1, 2, dtype=np.uint16)
    blob, recon = codec.encode({"rgb": mmcodec.data.images.load_modality("rgb", rgb),
                                "ir": mmcodec.data.images.load_modality("ir", ir)})
    parts = unpack(blob).streams
    assert all(len(p) == (3 if context == "checkerboard" else 2) for p in parts.values())
    decoded = mmcodec.decompress(blob)
    for m in ("rgb", "ir"):
        assert np.array_equal(decoded[m], recon[m])
    assert np.array_equal(codec.decompress(blob, only="ir")["ir"], recon["ir"])


def test_corrupted_autoregressive_stream_raises(context_model_dir, monkeypatch):
    """The serial decoder reads through the guarded rANS decoder: damaged y strings end in
    a BitstreamError, never a crash."""
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(context_model_dir))
    codec = mmcodec.load("ir-vi/tiny-autoregressive", quality=1)
    blob = codec.compress(rgb=smooth_image(64, 64, 3, 3), ir=smooth_image(64, 64, 1, 4))
    rng = np.random.default_rng(0)
    for damage in ("truncate", "random", "empty"):
        c = unpack(blob)
        y = c.streams["ir"][0]
        c.streams["ir"][0] = {"truncate": y[:len(y) // 3], "empty": b"",
                              "random": rng.integers(0, 256, len(y), dtype=np.uint8).tobytes()}[damage]
        with pytest.raises(BitstreamError):
            codec.decompress(pack(c))


@pytest.mark.parametrize("context, reference_context", [("checkerboard", "autoregressive"),
                                                        ("autoregressive", "hyperprior")])
def test_lu2022_with_context_round_trip(context, reference_context):
    torch.manual_seed(10)
    model = Lu2022(modalities=["rgb", "ir"], N=16, M=24, num_rates=2, sa_dim=12, align_ch=8, context=context,
                   reference_context=reference_context)
    sensitised(model)
    guard_entropy_decoders(model)
    model.update(force=True)
    model.eval()
    x = {"rgb": torch.rand(1, 3, 64, 64), "ir": torch.rand(1, 1, 64, 64)}
    out = model(x, torch.tensor([1]))
    assert set(out["likelihoods"]["ir"]) == {"y", "z", "side"}
    pair = model.compress(x, 1)
    assert len(pair.streams["ir"]) == (3 if context == "checkerboard" else 2)
    assert len(pair.streams["rgb"]) == (3 if reference_context == "checkerboard" else 2)
    decoded = model.decompress(pair.streams, pair.side, {"rgb": (64, 64), "ir": (64, 64)}, 1)
    for m in ("rgb", "ir"):
        assert torch.equal(decoded[m], pair.x_hat[m])
