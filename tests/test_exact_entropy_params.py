"""Integer entropy parameters (mmcodec/layers/integer.py; docs/bitstream.md, Determinism):
the hyper-synthesis computed with integers held in float64 gives the same CDF indexes and
means in any summation order, thread count or device, where the float path does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional
from compressai.models.base import get_scale_table

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.data.images import load_modality
from mmcodec.errors import BitstreamError
from mmcodec.latent_codecs import MeanScaleHyperprior, quantise_params
from mmcodec.layers import hyper_synthesis_mean_scale
from mmcodec.layers.integer import ExactnessError, IntegerNetwork, integer_scale_indexes

from conftest import smooth_image


def trained_like_h_s(N: int, M: int, seed: int) -> nn.Sequential:
    """An h_s with weights of a trained model's size (row L1 norms in the tens to hundreds)."""
    torch.manual_seed(seed)
    h_s = hyper_synthesis_mean_scale(N, M)
    with torch.no_grad():
        for layer in h_s:
            if hasattr(layer, "weight"):
                layer.weight.mul_(3.0)
                layer.bias.uniform_(-1, 1)
    return h_s


def z_like(N: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Integer symbols plus non-integer per-channel medians, as EntropyBottleneck decodes them."""
    g = torch.Generator().manual_seed(seed)
    return torch.round(3 * torch.randn(1, N, h, w, generator=g)) + torch.randn(1, N, 1, 1, generator=g)


def _split_sum(conv_fn, x: torch.Tensor, weight: torch.Tensor, in_dim: int, order: torch.Tensor, **kw) -> torch.Tensor:
    """conv(x, weight) summed in another order: input channels permuted and split into two
    groups whose results are added."""
    x, weight = x[:, order], weight.index_select(in_dim, order)
    half = x.shape[1] // 2
    first = conv_fn(x[:, :half], weight.narrow(in_dim, 0, half), **kw)
    return first + conv_fn(x[:, half:], weight.narrow(in_dim, half, x.shape[1] - half), **kw)


def reference_network(h_s: nn.Sequential, x: torch.Tensor, dtype: torch.dtype, integer: bool,
                      seed: int) -> torch.Tensor:
    """h_s evaluated with torch's own (transposed) convolutions in a permuted, split summation
    order: float (integer=False) or the integer semantics of IntegerNetwork, written
    independently (its weights quantised here, transposed convolutions not rewritten)."""
    bits, g = 16, torch.Generator().manual_seed(seed)
    h = torch.round(x.double() * 2.0 ** bits) if integer else x.to(dtype)
    for layer in h_s:
        if isinstance(layer, nn.LeakyReLU):
            if integer:
                slope = round(layer.negative_slope * 2 ** 24)
                h = torch.where(h < 0, torch.floor(h * slope / 2.0 ** 24), h)
            else:
                h = F.leaky_relu(h, layer.negative_slope)
            continue
        w, b = layer.weight.detach().to(dtype), layer.bias.detach().to(dtype)
        if integer:
            h = h.clamp(-2.0 ** 24, 2.0 ** 24)
            w, b = torch.round(w.double() * 2.0 ** bits), torch.round(b.double() * 2.0 ** (2 * bits))
        order = torch.randperm(h.shape[1], generator=g)
        if isinstance(layer, nn.ConvTranspose2d):
            acc = _split_sum(F.conv_transpose2d, h, w, 0, order, stride=layer.stride, padding=layer.padding,
                             output_padding=layer.output_padding)
        else:
            acc = _split_sum(F.conv2d, h, w, 1, order, stride=layer.stride, padding=layer.padding)
        acc = acc + b[:, None, None]
        h = torch.floor((acc + 2.0 ** (bits - 1)) / 2.0 ** bits) if integer else acc
    return h


def test_integer_h_s_equals_a_reference_in_another_summation_order_bit_for_bit():
    h_s = trained_like_h_s(16, 24, seed=1)
    net = IntegerNetwork(h_s)
    z = z_like(16, 6, 7, seed=2)
    out = net(z)
    assert out.dtype == torch.float64 and torch.equal(out, torch.round(out))
    for seed in (3, 4):
        assert torch.equal(out, reference_network(h_s, z, torch.float64, integer=True, seed=seed))
    # ... and approximates the float network to well below the 1/256 grid of the float path.
    assert (out / 2 ** 16 - h_s(z).detach().double()).abs().max() < 2e-3


def test_float_path_depends_on_the_summation_order_the_integer_path_does_not():
    """What happens across CPUs / CPU vs CUDA, simulated on one machine: the float h_s
    summed in another order moves some grid-snapped means and some CDF indexes; the
    integer h_s is unchanged."""
    h_s = trained_like_h_s(64, 96, seed=5)
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    z = z_like(64, 8, 8, seed=6)
    float_params = [reference_network(h_s, z, torch.float32, integer=False, seed=s) for s in (7, 8)]
    snapped = [quantise_params(p).chunk(2, 1) for p in float_params]
    float_indexes = [gc.build_indexes(scales) for scales, _ in snapped]
    assert not torch.equal(float_params[0], float_params[1])
    assert (snapped[0][1] != snapped[1][1]).any() or (float_indexes[0] != float_indexes[1]).any()
    net = IntegerNetwork(h_s)
    integer_params = [net(z)] + [reference_network(h_s, z, torch.float64, integer=True, seed=s) for s in (7, 8)]
    assert all(torch.equal(integer_params[0], p) for p in integer_params[1:])


def test_one_and_two_threads_give_identical_integer_parameters():
    h_s = trained_like_h_s(64, 96, seed=9)   # the shipped widths
    net, z = IntegerNetwork(h_s), z_like(64, 12, 10, seed=10)
    outputs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        outputs.append(net(z))
    torch.set_num_threads(1)
    assert torch.equal(outputs[0], outputs[1])


def test_banded_im2col_equals_one_band(monkeypatch):
    import mmcodec.layers.integer as integer
    net, z = IntegerNetwork(trained_like_h_s(8, 12, seed=11)), z_like(8, 9, 5, seed=12)
    whole = net(z)
    monkeypatch.setattr(integer, "_BAND_ELEMENTS", 1)   # one output row per band
    assert torch.equal(net(z), whole)


def test_static_bound_refuses_bit_widths_that_could_round():
    h_s = trained_like_h_s(8, 12, seed=13)
    bounds = IntegerNetwork(h_s).exactness_bounds()
    assert len(bounds) == len(h_s) and max(bounds) < 2.0 ** 53
    with pytest.raises(ExactnessError, match="accumulator bound"):
        IntegerNetwork(h_s, weight_bits=40)
    with pytest.raises(ExactnessError):
        IntegerNetwork(h_s, activation_bits=24, activation_limit=2 ** 16)
    with pytest.raises(ValueError, match="no exact form"):
        IntegerNetwork(nn.Sequential(nn.Conv2d(2, 2, 1), nn.GELU()))


def test_inputs_beyond_the_bound_are_clamped_not_rounded():
    net = IntegerNetwork(trained_like_h_s(8, 12, seed=14))
    z = z_like(8, 4, 4, seed=15)
    huge = z.clone()
    huge[0, :, 1, 2] = 1e12   # a crafted stream's hyper-latent
    clamped = z.clone()
    clamped[0, :, 1, 2] = net.activation_limit
    assert torch.equal(net(huge), net(clamped))


def test_integer_indexes_equal_compressais_build_indexes():
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    thresholds = torch.floor(gc.scale_table.double() * 2 ** 16)
    # every threshold and its neighbours, negative and huge scales
    scales = torch.cat([thresholds - 1, thresholds, thresholds + 1, torch.tensor([-5e5, 0.0, 1e9])])
    scales = scales[torch.randperm(len(scales), generator=torch.Generator().manual_seed(0))].reshape(1, 1, -1, 1)
    expected = gc.build_indexes(scales / 2 ** 16)   # exact: integers times a power of two
    assert torch.equal(integer_scale_indexes(scales, gc.scale_table), expected)


def test_integer_network_is_cached_and_rebuilt_when_weights_change():
    codec = MeanScaleHyperprior(24, 16)
    first = codec.integer_h_s()
    assert codec.integer_h_s() is first
    with torch.no_grad():
        codec.h_s[4].bias.add_(1.0)
    second = codec.integer_h_s()
    assert second is not first and not torch.equal(second.layers[-1].bias, first.layers[-1].bias)
    codec.load_state_dict(MeanScaleHyperprior(24, 16).state_dict(), strict=False)
    assert codec.integer_h_s() is not second


def test_codec_round_trip_writes_exact_streams_and_still_decodes_float_path_streams(tiny_env):
    images = {"rgb": load_modality("rgb", smooth_image(96, 128, 3, 21)),
              "ir": load_modality("ir", smooth_image(96, 128, 1, 22))}
    codec = mmcodec.load("ir-vi/tiny", quality=2)
    blob, recon = codec.encode(images)
    c = unpack(blob)
    assert c.version == 11 and c.exact_params  # 3 + latent CRCs
    for m, a in mmcodec.decompress(blob).items():
        assert np.array_equal(a, recon[m])
    # A stream of the float path (as mmcodec wrote before integer parameters): version 1 (9 with
    # the latent CRCs written since), decoded by a default codec with the float path.
    codec.exact_entropy_parameters = False
    old_blob, old_recon = codec.encode(images)
    assert unpack(old_blob).version == 9 and not unpack(old_blob).exact_params  # 1 + latent CRCs
    for m, a in mmcodec.load("ir-vi/tiny", quality=2).decompress(old_blob).items():
        assert np.array_equal(a, old_recon[m])


def test_exact_stream_for_a_model_without_an_integer_path_is_refused(tiny_env, monkeypatch):
    blob = mmcodec.load("ir-vi/tiny", quality=1).compress(rgb=smooth_image(64, 64, 3, 23),
                                                          ir=smooth_image(64, 64, 1, 24), effort=0)
    monkeypatch.setattr(mmcodec.codec, "has_exact_entropy_parameters", lambda model: False)
    with pytest.raises(BitstreamError, match="integer entropy parameters"):
        mmcodec.decompress(blob)
    c = unpack(blob)
    c.exact_params = False   # relabelled as a float-path stream: no longer refused by the header
    assert pack(c)[4:6] == b"\x00\x09"   # 1 + latent CRCs


# -- spatial-context codecs -----------------------------------------------------------------
def _active_context_codec(cls, seed: int, M: int = 24, N: int = 16):
    torch.manual_seed(seed)
    codec = cls(M, N)
    with torch.no_grad():   # the context network's last layer starts at zero
        last = codec.entropy_parameters[-1]
        last.weight.normal_(0, 0.05)
        last.bias.normal_(0, 0.5)
    codec.update(force=True)
    return codec.eval()


def _latent(seed: int, M: int = 24, hw: tuple[int, int] = (8, 12)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, M, *hw, generator=g) * torch.rand(1, M, 1, 1, generator=g) * 8


def test_autoregressive_serial_integer_params_equal_the_parallel_integer_networks():
    """Position by position, the exact scan computes what the integer networks give over the
    whole decoded latent (the masked convolution sees only decoded positions)."""
    from mmcodec.latent_codecs import AutoregressiveMeanScale, decode_hyper_latent, exact_indexes_and_means
    codec = _active_context_codec(AutoregressiveMeanScale, seed=31)
    strings, y_hat = codec.compress(_latent(32))
    z_hat = decode_hyper_latent(codec.entropy_bottleneck, strings[1], (8, 12))
    hyper = codec._integer_networks.get("h_s", codec.h_s)(z_hat)
    context = codec._integer_networks.get("context", nn.Sequential(codec.context_prediction))(y_hat)
    delta = codec._integer_networks.get("entropy_parameters", codec.entropy_parameters).run(
        torch.cat([hyper, context], 1))
    _, means = exact_indexes_and_means(codec.gaussian_conditional, *(hyper + delta).chunk(2, 1), y_hat.dtype)
    assert torch.equal(y_hat - torch.round(y_hat - means), means)   # y_hat = symbol + these means
    assert torch.equal(codec.decompress(strings, (8, 12)), y_hat)


@pytest.mark.parametrize("name", ["checkerboard", "autoregressive"])
def test_context_codecs_code_exactly_and_still_decode_float_path_streams(name):
    from mmcodec.latent_codecs import build_latent_codec, entropy_parameter_path, has_exact_entropy_parameters
    codec = _active_context_codec(type(build_latent_codec(name, 24, 16)), seed=33)
    assert has_exact_entropy_parameters(codec)
    y = _latent(34)
    streams = {}
    for exact in (True, False):
        with entropy_parameter_path(codec, exact):
            strings, y_hat = codec.compress(y)
            assert torch.equal(codec.decompress(strings, (8, 12)), y_hat)
            threads = torch.get_num_threads()
            torch.set_num_threads(2)
            try:
                assert torch.equal(codec.decompress(strings, (8, 12)), y_hat)
            finally:
                torch.set_num_threads(threads)
        streams[exact] = strings
    assert codec.exact_entropy_parameters   # restored
    assert streams[True][-1] == streams[False][-1]   # same z; y coded with other parameters
