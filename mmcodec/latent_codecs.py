"""Latent codecs: how a latent y becomes bits and back.

A latent codec owns its entropy models and exposes three operations with the same
vocabulary as CompressAI:
- forward(y)            -> y_hat (for the synthesis transform) and likelihoods (for the rate)
- compress(y)           -> list of byte strings, and the y_hat the decoder will reproduce
- decompress(strings, latent_hw) -> y_hat

Single-modality codecs, by spatial context (`build_latent_codec`, the `context` kwarg of
the models):
- "hyperprior": `MeanScaleHyperprior`, no spatial context; strings [y, z].
- "checkerboard": `CheckerboardMeanScale` (He et al. 2021), two parallel passes;
  strings [y anchors, y non-anchors, z].
- "autoregressive": `AutoregressiveMeanScale` (Minnen et al. 2018), serial raster-order
  coding; strings [y, z]. Fidelity to the paper, at a CPU cost (one step per position).
- "channel-slice": `ChannelSliceCodec` (Minnen & Singh 2020), 4 channel slices + LRP, no
  spatial context; strings [z, slice 0..3]. Its own parameter names: no hyperprior warm start.
Latent sizes must be multiples of 4 (h_a/h_s change the resolution by 4), as they are
in every model (images are padded to multiples of 64).

Cross-modal entropy models (CCEM) extend the same interface with a `context` argument.

Determinism (docs/bitstream.md, Determinism): the hyperprior and the two context codecs
code with integer networks (mmcodec.layers.integer: h_s, context convolution and
entropy-parameters network) whose CDF indexes and means are exact on every platform
(`exact_entropy_parameters`, format versions 3 and 4); older streams, and the channel-slice
codecs, use the float path: every value that selects a CDF (scales -> indexes) or offsets the
quantiser (means) goes through `quantise_params`, and encoder and decoder compute those
values with the same operations on the same inputs (exact on one platform only). The context
codecs also code single-threaded whatever the caller's setting (`single_threaded`), as
`mmcodec.Codec` does for every model: their entropy-parameters network of 1x1
convolutions sums differently with 2 threads at M=96 and amplifies h_s's thread-dependent
rounding, enough to move some parameters across the 1/256 grid.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from mmcodec.entropy_adapter import bottleneck_likelihood, bottleneck_medians, gaussian_likelihood
from mmcodec.layers import MaskedConv2d, hyper_analysis, hyper_synthesis_mean_scale, ste_round
from mmcodec.layers import AgentFusionBlock, LiteTransformer
from mmcodec.layers.integer import ACTIVATION_BITS, IntegerNetwork, integer_scale_indexes


_Method = TypeVar("_Method", bound=Callable)


def single_threaded(method: _Method) -> _Method:
    """Run `method` with one torch thread and restore the caller's setting: some CPU
    kernels split their sums by thread count, and the decoder must repeat the encoder's
    arithmetic bit for bit."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return method(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return method(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper  # type: ignore[return-value]


def quantise_params(t: torch.Tensor, step: float = 1.0 / 256) -> torch.Tensor:
    """Snap entropy parameters to a grid so tiny float differences between runs rarely move
    a value across a CDF-table boundary (see docs/bitstream.md, determinism)."""
    return torch.round(t / step) * step


class _IntegerNetworks:
    """Integer copies (mmcodec.layers.integer) of a codec's float sub-networks, built on first
    use and rebuilt whenever one of their weights changes (new tensor, device or in-place
    update, e.g. load_state_dict). A plain object, not a submodule: nothing in the state dict."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple, IntegerNetwork]] = {}

    def get(self, name: str, network: nn.Sequential) -> IntegerNetwork:
        key = tuple((p.data_ptr(), p._version, p.device) for p in network.parameters())
        if name not in self._cache or self._cache[name][0] != key:
            self._cache[name] = (key, IntegerNetwork(network))
        return self._cache[name][1]


def exact_indexes_and_means(gaussian_conditional: GaussianConditional, scales: torch.Tensor, means: torch.Tensor,
                            dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """CDF indexes and means (in `dtype`) from integer scales and means in units of
    2^-ACTIVATION_BITS, without any float rounding that could differ between platforms."""
    indexes = integer_scale_indexes(scales, gaussian_conditional.scale_table, ACTIVATION_BITS)
    # An integer times a power of two: exact in float32 while |mean| < 2^(24 - bits),
    # correctly rounded (hence the same everywhere) beyond.
    return indexes, (means * 2.0 ** -ACTIVATION_BITS).to(dtype)


def has_exact_entropy_parameters(model: nn.Module) -> bool:
    """Whether any latent codec of `model` can compute its entropy parameters with integer
    arithmetic (`MeanScaleHyperprior`); its streams are then format version 3 or 4."""
    return any(hasattr(m, "exact_entropy_parameters") for m in model.modules())


@contextlib.contextmanager
def entropy_parameter_path(model: nn.Module, exact: bool) -> Iterator[None]:
    """Code with the integer (exact=True) or the float entropy-parameter path in every latent
    codec of `model` that has both; restore the previous setting afterwards."""
    codecs = [m for m in model.modules() if hasattr(m, "exact_entropy_parameters")]
    before = [m.exact_entropy_parameters for m in codecs]
    for m in codecs:
        m.exact_entropy_parameters = exact
    try:
        yield
    finally:
        for m, b in zip(codecs, before):
            m.exact_entropy_parameters = b


def code_hyper_latent(entropy_bottleneck: EntropyBottleneck, z: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    """Entropy-code the hyper-latent of one image; return its string and z_hat exactly as the
    decoder will reconstruct it (the entropy models downstream must see the same values)."""
    if z.shape[0] != 1:
        raise ValueError("compress codes one image at a time")
    strings = entropy_bottleneck.compress(z)
    return strings[0], entropy_bottleneck.decompress(strings, z.shape[-2:])


def decode_hyper_latent(entropy_bottleneck: EntropyBottleneck, z_string: bytes,
                        latent_hw: tuple[int, int]) -> torch.Tensor:
    """z_hat for a latent y of size latent_hw: h_a downsamples y by 4."""
    return entropy_bottleneck.decompress([z_string], (latent_hw[0] // 4, latent_hw[1] // 4))


class MeanScaleHyperprior(nn.Module):
    """Mean-scale Gaussian hyperprior (Minnen et al. 2018 without the autoregressive part).

    z = h_a(y) is coded with a factorised prior; h_s(z_hat) gives a mean and a scale for
    every element of y.
    """

    def __init__(self, M: int, N: int) -> None:
        super().__init__()
        self.h_a = hyper_analysis(M, N)
        self.h_s = hyper_synthesis_mean_scale(N, M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        # Coding path of the entropy parameters (training always uses the float h_s):
        # integer h_s (True) or float h_s + quantise_params (streams of format versions 1, 2).
        self.exact_entropy_parameters = True
        self._integer_networks = _IntegerNetworks()

    def _params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._params(z_hat)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        # Rate from additive noise, decoder input from rounding (straight-through): the
        # synthesis transform trains on the values it will see at test time.
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def relaxed(self, y: torch.Tensor, z: torch.Tensor, quantise: Callable[[torch.Tensor], torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder refinement (mmcodec.refine): y_tilde and the estimated bits of coding the
        free latents (y, z), with `quantise` (a differentiable stand-in for rounding) applied
        where `compress` rounds: z around the prior's medians, y around the predicted means."""
        medians = bottleneck_medians(self.entropy_bottleneck)
        z_tilde = quantise(z - medians) + medians
        scales, means = self._params(z_tilde)
        y_tilde = quantise(y - means) + means
        bits = -(torch.log2(gaussian_likelihood(self.gaussian_conditional, y_tilde, scales, means)).sum()
                 + torch.log2(bottleneck_likelihood(self.entropy_bottleneck, z_tilde)).sum())
        return y_tilde, bits

    @torch.no_grad()
    def compress(self, y: torch.Tensor, z: torch.Tensor | None = None) -> tuple[list[bytes], torch.Tensor]:
        """`z`: a hyper-latent to code instead of h_a(y) (a refined one, mmcodec.refine)."""
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y) if z is None else z)
        indexes, means = self._coding_params(z_hat)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [y_strings[0], z_string], y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        y_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        indexes, means = self._coding_params(z_hat)
        return self.gaussian_conditional.decompress([y_string], indexes, means=means)

    def integer_h_s(self) -> IntegerNetwork:
        """h_s with integer weights (mmcodec.layers.integer), built on first use and rebuilt
        whenever a weight of h_s changes (new tensor, device or in-place update)."""
        return self._integer_networks.get("h_s", self.h_s)

    def exact_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scales and means of the integer h_s: integer-valued float64 in units of
        2^-activation_bits (mmcodec.layers.integer), identical on every platform with
        IEEE-754 doubles."""
        scales, means = self.integer_h_s()(z_hat).chunk(2, 1)
        return scales, means

    def _coding_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes and means for coding y: from the integer h_s (`exact_entropy_parameters`,
        format versions 3 and 4) or, for older streams, from the float h_s snapped to a grid."""
        if self.exact_entropy_parameters:
            return exact_indexes_and_means(self.gaussian_conditional, *self.exact_params(z_hat), z_hat.dtype)
        scales, means = self._quantised_params(z_hat)
        return self.gaussian_conditional.build_indexes(scales), means

    def _quantised_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self._params(z_hat)
        return quantise_params(scales), quantise_params(means)


def scale_indexes(gaussian_conditional: GaussianConditional, scales: torch.Tensor) -> torch.Tensor:
    """CDF table indexes for `scales`, equal to `GaussianConditional.build_indexes` (the first
    table scale at or above the lower-bounded scale) but one searchsorted instead of one
    comparison per table entry: the serial coder asks for a few indexes at every position."""
    scales = gaussian_conditional.lower_bound_scale(scales)
    table = gaussian_conditional.scale_table[:-1].contiguous()
    return torch.searchsorted(table, scales.contiguous())


class _ContextHyperprior(nn.Module):
    """What the spatial-context codecs share: the mean-scale hyperprior of
    `MeanScaleHyperprior` (same attribute names, so its weights warm-start these codecs key
    for key) and an entropy-parameters network over [hyperprior scales and means, context].

    The network predicts a correction to the hyperprior's scales and means, and its last
    layer starts at zero: a codec warm-started from a hyperprior checkpoint starts with
    exactly that checkpoint's entropy model and learns to use the context from there.
    Subclasses add `context_prediction` (M -> 2M channels).
    """

    def __init__(self, M: int, N: int) -> None:
        super().__init__()
        self.M = M
        self.h_a = hyper_analysis(M, N)
        self.h_s = hyper_synthesis_mean_scale(N, M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        # 1x1 convolutions only (Minnen et al. 2018 widths): the serial coder evaluates this
        # network at one position at a time.
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(4 * M, 10 * M // 3, 1), nn.LeakyReLU(),
            nn.Conv2d(10 * M // 3, 8 * M // 3, 1), nn.LeakyReLU(),
            nn.Conv2d(8 * M // 3, 2 * M, 1))
        nn.init.zeros_(self.entropy_parameters[-1].weight)
        nn.init.zeros_(self.entropy_parameters[-1].bias)

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables (a PairModel's `update()` does this for every codec it holds)."""
        updated = self.entropy_bottleneck.update(force=force)
        return self.gaussian_conditional.update_scale_table(get_scale_table(), force=force) | updated

    def _params(self, hyper: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scales and means from the hyperprior output h_s(z_hat) (scales || means) and a
        2M-channel context."""
        hyper_scales, hyper_means = hyper.chunk(2, 1)
        delta_scales, delta_means = self.entropy_parameters(torch.cat([hyper, context], 1)).chunk(2, 1)
        return hyper_scales + delta_scales, hyper_means + delta_means

    @staticmethod
    def _check_latent_size(y: torch.Tensor) -> None:
        if y.shape[-2] % 4 or y.shape[-1] % 4:
            raise ValueError(f"latent size {tuple(y.shape[-2:])}: height and width must be multiples of 4")

    def _hyperprior(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/evaluation path of the hyperprior: h_s(z_hat) and the likelihoods of z."""
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        return self.h_s(z_hat), z_likelihoods


def checkerboard_anchors(latent_hw: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean (H, W) map of the anchor positions: (row + column) even, (0, 0) included."""
    rows = torch.arange(latent_hw[0], device=device)[:, None]
    cols = torch.arange(latent_hw[1], device=device)[None, :]
    return (rows + cols) % 2 == 0


class CheckerboardMeanScale(_ContextHyperprior):
    """Checkerboard context (He et al., "Checkerboard Context Model for Efficient Learned
    Image Compression", CVPR 2021) on the mean-scale hyperprior.

    Anchors (`checkerboard_anchors`) are coded first with the hyperprior alone (the context
    input is zero); the others then use the hyperprior plus a 5x5 convolution over the
    decoded anchors (non-anchors zeroed). Both passes are parallel over the image, in
    training and in coding.

    Strings: [anchors, non-anchors, z]; each y string holds its positions in raster order,
    channel-major (the order of boolean-mask indexing).
    """

    def __init__(self, M: int, N: int) -> None:
        super().__init__(M, N)
        self.context_prediction = nn.Conv2d(M, 2 * M, 5, padding=2)
        # Coding path, as in MeanScaleHyperprior: integer h_s, context convolution and
        # entropy-parameters network (True) or the float ones + quantise_params.
        self.exact_entropy_parameters = True
        self._integer_networks = _IntegerNetworks()

    def _anchor_params(self, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._params(hyper, torch.zeros_like(hyper))

    def _non_anchor_params(self, hyper: torch.Tensor, anchors_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`anchors_hat`: y_hat with every non-anchor position set to zero."""
        return self._params(hyper, self.context_prediction(anchors_hat))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hyper, z_likelihoods = self._hyperprior(y)
        anchors = checkerboard_anchors(y.shape[-2:], y.device)
        anchor_scales, anchor_means = self._anchor_params(hyper)
        # Pass 2 sees the anchors only, rounded as the decoder will have them.
        anchors_hat = (ste_round(y - anchor_means) + anchor_means) * anchors
        other_scales, other_means = self._non_anchor_params(hyper, anchors_hat)
        scales = torch.where(anchors, anchor_scales, other_scales)
        means = torch.where(anchors, anchor_means, other_means)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def _hyper_for_coding(self, z_hat: torch.Tensor) -> torch.Tensor:
        """h_s(z_hat): float, or integers in units of 2^-ACTIVATION_BITS on the exact path."""
        if self.exact_entropy_parameters:
            return self._integer_networks.get("h_s", self.h_s)(z_hat)
        return self.h_s(z_hat)

    def _coding_params(self, hyper: torch.Tensor, y_hat: torch.Tensor, anchor_pass: bool
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes and means of every position for one pass."""
        gc = self.gaussian_conditional
        if not self.exact_entropy_parameters:
            scales, means = self._anchor_params(hyper) if anchor_pass else self._non_anchor_params(hyper, y_hat)
            return gc.build_indexes(quantise_params(scales)), quantise_params(means)
        # Integers in units of 2^-ACTIVATION_BITS throughout. y_hat = symbol + mean is on that
        # grid (while |y_hat| < 2^(24 - bits); beyond, float32 rounded it the same everywhere)
        # and the integer networks take it back exactly.
        if anchor_pass:
            context = torch.zeros_like(hyper)
        else:
            context = self._integer_networks.get("context", nn.Sequential(self.context_prediction))(y_hat)
        delta = self._integer_networks.get("entropy_parameters", self.entropy_parameters).run(
            torch.cat([hyper, context], 1))
        scales, means = (hyper + delta).chunk(2, 1)
        return exact_indexes_and_means(gc, scales, means, y_hat.dtype)

    @torch.no_grad()
    @single_threaded
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
        self._check_latent_size(y)
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y))
        hyper = self._hyper_for_coding(z_hat)
        anchors = checkerboard_anchors(y.shape[-2:], y.device)
        gc = self.gaussian_conditional
        # Non-anchors stay zero until their pass: the decoder's state after decoding anchors.
        y_hat = torch.zeros_like(y)
        strings = []
        for anchor_pass, positions in ((True, anchors), (False, ~anchors)):
            indexes, means = self._coding_params(hyper, y_hat, anchor_pass)
            values, means = y[..., positions], means[..., positions]
            strings.append(gc.compress(values, indexes[..., positions], means=means)[0])
            y_hat[..., positions] = gc.quantize(values, "dequantize", means)
        return [*strings, z_string], y_hat

    @torch.no_grad()
    @single_threaded
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        if len(strings) != 3:
            raise ValueError(f"expected 3 strings (anchors, non-anchors, z), got {len(strings)}")
        anchor_string, other_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        hyper = self._hyper_for_coding(z_hat)
        anchors = checkerboard_anchors(hyper.shape[-2:], hyper.device)
        gc = self.gaussian_conditional
        y_hat = z_hat.new_zeros(1, self.M, *hyper.shape[-2:])
        for anchor_pass, positions, string in ((True, anchors, anchor_string), (False, ~anchors, other_string)):
            indexes, means = self._coding_params(hyper, y_hat, anchor_pass)
            y_hat[..., positions] = gc.decompress([string], indexes[..., positions], means=means[..., positions])
        return y_hat


class _CdfRows:
    """The Gaussian conditional's CDF tables as Python lists, each row cut to its own
    length. The serial decoder hands the rANS decoder only the rows one position uses:
    converting the whole table on every call would cost ~10x more than the decoding."""

    def __init__(self, gaussian_conditional: GaussianConditional) -> None:
        if gaussian_conditional.quantized_cdf.numel() == 0:
            raise ValueError("uninitialised CDF tables: run update() first")
        self.lengths: list[int] = gaussian_conditional.cdf_length.tolist()
        self.offsets: list[int] = gaussian_conditional.offset.tolist()
        self.cdfs: list[list[int]] = [row[:n] for row, n in
                                      zip(gaussian_conditional.quantized_cdf.tolist(), self.lengths)]

    def subset(self, indexes: list[int]) -> tuple[list[int], list[list[int]], list[int], list[int]]:
        """(indexes into the subset, its CDF rows, lengths, offsets) for the rows `indexes` use."""
        used = sorted(set(indexes))
        position = {k: n for n, k in enumerate(used)}
        return ([position[k] for k in indexes], [self.cdfs[k] for k in used],
                [self.lengths[k] for k in used], [self.offsets[k] for k in used])


class _RasterScan:
    """Entropy parameters of one latent position at a time, from the hyperprior and the
    positions already coded (raster order): the serial half of `AutoregressiveMeanScale`.

    Encoder and decoder both run exactly this code on the same values, so they get the
    same floats. Per position it reads the causal taps of the 5x5 neighbourhood and
    evaluates the 1x1 entropy-parameters network as matrix-vector products; the hyperprior
    half of that network's first layer does not depend on decoded values and is one
    convolution over the whole latent.
    """

    def __init__(self, codec: "AutoregressiveMeanScale", hyper: torch.Tensor) -> None:
        M, k = codec.M, codec.context_prediction.kernel_size[0]
        self.M, self.kernel, self.pad = M, k, k // 2
        self.taps = k * k // 2          # positions before the centre in raster order
        height, width = hyper.shape[-2:]
        self.latent_hw = (height, width)
        self.y_hat = hyper.new_zeros(M, height + 2 * self.pad, width + 2 * self.pad)

        weight = codec.context_prediction.masked_weight().reshape(2 * M, M, k * k)
        self.context_weight = weight[:, :, :self.taps].reshape(2 * M, M * self.taps).contiguous()
        self.context_bias = codec.context_prediction.bias

        self.gaussian_conditional = codec.gaussian_conditional
        first, *rest = codec.entropy_parameters
        self.hidden_from_hyper = F.conv2d(hyper, first.weight[:, :2 * M], first.bias)[0]
        self.first_context_weight = first.weight[:, 2 * M:, 0, 0].contiguous()
        self.rest = [self._on_vectors(layer) for layer in rest]
        self.hyper_scales, self.hyper_means = hyper[0].chunk(2, 0)

    @staticmethod
    def _on_vectors(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """A layer of the entropy-parameters network applied to one position's vector: 1x1
        convolutions become matrix-vector products, activations apply as they are."""
        if isinstance(layer, nn.Conv2d):
            weight, bias = layer.weight[:, :, 0, 0].contiguous(), layer.bias
            return lambda h: torch.addmv(bias, weight, h)
        return layer

    def params(self, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes of the quantised scales, and quantised means (M values each) of
        position (i, j)."""
        k, M = self.kernel, self.M
        causal = self.y_hat[:, i:i + k, j:j + k].reshape(M, k * k)[:, :self.taps].reshape(-1)
        context = torch.addmv(self.context_bias, self.context_weight, causal)
        h = torch.addmv(self.hidden_from_hyper[:, i, j], self.first_context_weight, context)
        for layer in self.rest:
            h = layer(h)
        scales = quantise_params(self.hyper_scales[:, i, j] + h[:M])
        means = quantise_params(self.hyper_means[:, i, j] + h[M:])
        return scale_indexes(self.gaussian_conditional, scales), means

    def write(self, i: int, j: int, values: torch.Tensor) -> None:
        self.y_hat[:, i + self.pad, j + self.pad] = values

    def latent(self) -> torch.Tensor:
        p = self.pad
        return self.y_hat[None, :, p:p + self.latent_hw[0], p:p + self.latent_hw[1]].clone()


class _ExactRasterScan:
    """Integer counterpart of `_RasterScan` (format versions 3 and 4): per position, the
    masked 5x5 context convolution over the decoded window and the 1x1 entropy-parameters
    network, both with integer weights (mmcodec.layers.integer) on integer inputs in units of
    2^-ACTIVATION_BITS; the same values as those integer networks applied to the whole
    latent, on every platform."""

    def __init__(self, codec: "AutoregressiveMeanScale", hyper: torch.Tensor, dtype: torch.dtype) -> None:
        M, k = codec.M, codec.context_prediction.kernel_size[0]
        self.M, self.kernel, self.pad = M, k, k // 2
        height, width = hyper.shape[-2:]
        self.latent_hw = (height, width)
        self.gaussian_conditional = codec.gaussian_conditional
        self.y_hat = hyper.new_zeros(M, height + 2 * self.pad, width + 2 * self.pad, dtype=dtype)
        self.context_net = codec._integer_networks.get("context", nn.Sequential(codec.context_prediction))
        # The window is cut from the padded latent: the convolution itself pads nothing.
        self.window_conv = [dataclasses.replace(self.context_net.layers[0], padding=0)]
        self.params_net = codec._integer_networks.get("entropy_parameters", codec.entropy_parameters)
        self.hyper = hyper

    def params(self, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes and means (M values each) of position (i, j)."""
        k = self.kernel
        window = self.context_net.to_fixed_point(self.y_hat[None, :, i:i + k, j:j + k])
        context = self.context_net.run(window, self.window_conv)                       # (1, 2M, 1, 1)
        hyper = self.hyper[..., i:i + 1, j:j + 1]
        scales, means = (hyper + self.params_net.run(torch.cat([hyper, context], 1))).flatten().chunk(2)
        return exact_indexes_and_means(self.gaussian_conditional, scales, means, self.y_hat.dtype)

    def write(self, i: int, j: int, values: torch.Tensor) -> None:
        self.y_hat[:, i + self.pad, j + self.pad] = values

    def latent(self) -> torch.Tensor:
        p = self.pad
        return self.y_hat[None, :, p:p + self.latent_hw[0], p:p + self.latent_hw[1]].clone()


class AutoregressiveMeanScale(_ContextHyperprior):
    """Joint autoregressive and hierarchical prior (Minnen, Ballé, Toderici, "Joint
    Autoregressive and Hierarchical Priors for Learned Image Compression", NeurIPS 2018),
    mean-scale Gaussian.

    A 5x5 masked convolution (mask A: rows above and the left part of the current row)
    gives the context of every position from the latents decoded before it in raster order.
    Training is parallel: the context sees y with uniform noise, as in the paper (the
    decoder's values, rounded around means that depend on this very context, exist only
    serially). Coding is serial, one position (all M channels) at a time, in raster order,
    with one rANS stream; decoding therefore takes H*W small steps.

    Strings: [y, z]; y holds positions in raster order, channels 0..M-1 within a position.
    """

    def __init__(self, M: int, N: int) -> None:
        super().__init__(M, N)
        self.context_prediction = MaskedConv2d(M, 2 * M, 5, mask_type="A")
        # Coding path, as in MeanScaleHyperprior: integer networks (`_ExactRasterScan`) or the
        # float ones + quantise_params (`_RasterScan`).
        self.exact_entropy_parameters = True
        self._integer_networks = _IntegerNetworks()

    def _scan(self, z_hat: torch.Tensor) -> "_RasterScan | _ExactRasterScan":
        if self.exact_entropy_parameters:
            return _ExactRasterScan(self, self._integer_networks.get("h_s", self.h_s)(z_hat), z_hat.dtype)
        return _RasterScan(self, self.h_s(z_hat))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hyper, z_likelihoods = self._hyperprior(y)
        context_input = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        scales, means = self._params(hyper, self.context_prediction(context_input))
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    @torch.no_grad()
    @single_threaded
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
        self._check_latent_size(y)
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y))
        scan = self._scan(z_hat)
        tables = _CdfRows(self.gaussian_conditional)
        symbols, indexes = [], []
        for i in range(y.shape[-2]):
            for j in range(y.shape[-1]):
                position_indexes, means = scan.params(i, j)
                q = torch.round(y[0, :, i, j] - means)
                scan.write(i, j, q + means)         # exactly what the decoder reconstructs
                symbols.append(q)
                indexes.append(position_indexes)
        # One call for the whole stream; the decoder reads it back position by position.
        y_string = self.gaussian_conditional.entropy_coder._encoder.encode_with_indexes(
            torch.stack(symbols).int().flatten().tolist(), torch.stack(indexes).flatten().tolist(),
            tables.cdfs, tables.lengths, tables.offsets)
        return [y_string, z_string], scan.latent()

    @torch.no_grad()
    @single_threaded
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        if len(strings) != 2:
            raise ValueError(f"expected 2 strings (y, z), got {len(strings)}")
        y_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        scan = self._scan(z_hat)
        tables = _CdfRows(self.gaussian_conditional)
        # The (guarded, see mmcodec.bitstream.rans_guard) decoder of this entropy model.
        decoder = self.gaussian_conditional.entropy_coder._decoder
        decoder.set_stream(y_string)
        height, width = scan.latent_hw
        for i in range(height):
            for j in range(width):
                position_indexes, means = scan.params(i, j)
                local, cdfs, lengths, offsets = tables.subset(position_indexes.tolist())
                symbols = decoder.decode_stream(local, cdfs, lengths, offsets)
                scan.write(i, j, torch.tensor(symbols, dtype=means.dtype, device=means.device) + means)
        return scan.latent()


LATENT_CONTEXTS = ("hyperprior", "checkerboard", "autoregressive", "channel-slice")


def build_latent_codec(context: str, M: int, N: int) -> nn.Module:
    """The single-modality latent codec for a spatial-context name (a model constructor kwarg)."""
    codecs = {"hyperprior": MeanScaleHyperprior, "checkerboard": CheckerboardMeanScale,
              "autoregressive": AutoregressiveMeanScale,
              # Minnen & Singh 2020 channel context, without spatial context: 4 slices + LRP.
              "channel-slice": lambda M, N: ChannelSliceCodec(M, N, num_slices=4, lceb=False)}
    if context not in codecs:
        raise ValueError(f"context must be one of {', '.join(LATENT_CONTEXTS)}, not {context!r}")
    return codecs[context](M, N)


def split_channels(channels: int, parts: int) -> list[int]:
    """Near-equal channel slice sizes, larger slices first (e.g. 96 in 5 -> 20, 19, 19, 19, 19)."""
    if not 1 <= parts <= channels:
        raise ValueError(f"cannot split {channels} channels into {parts} slices")
    base, extra = divmod(channels, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class SliceLoopCodec(nn.Module):
    """The channel-wise autoregressive loop (Minnen & Singh, ICIP 2020) shared by every
    channel-slice latent codec: y is cut into `slice_sizes` slices coded one after another,
    each with a Gaussian whose mean and scale depend on the hyperprior and the slices
    already decoded; LRP then refines each decoded slice. Streams: [z, slice 0, ..., n-1].

    Subclasses own `h_a`, `entropy_bottleneck`, `gaussian_conditional` and `slice_sizes`,
    and define the three hooks that differ between entropy models:
    - `_hyper(z_hat)`: the hyper-synthesis output handed to every slice,
    - `_slice_params(i, hyper, decoded, context_features) -> (support, scales, means)`,
    - `_refine(i, support, y_hat_slice)`: LRP (or nothing).
    `_context_features` turns an optional cross-modal `context` into features once per
    image (CCEM); the default accepts none. forward, compress and decompress run the same
    hooks on the same inputs, which is what makes decoding bit-exact.
    """

    slice_sizes: list[int]
    # Training-time z_hat for h_s: "noise" (CompressAI: the bottleneck's noisy z) or "ste"
    # (LIC-TCM: the rounded z the decoder sees, with a straight-through gradient).
    training_z_hat = "noise"

    def _hyper(self, z_hat: torch.Tensor):
        raise NotImplementedError

    def _slice_params(self, i: int, hyper, decoded: list[torch.Tensor], context_features: torch.Tensor | None):
        raise NotImplementedError

    def _refine(self, i: int, support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        return y_hat_slice

    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is not None:
            raise ValueError(f"{type(self).__name__} takes no cross-modal context")
        return None

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables (a PairModel's `update()` does this for every codec it holds)."""
        updated = self.entropy_bottleneck.update(force=force)
        return self.gaussian_conditional.update_scale_table(get_scale_table(), force=force) | updated

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        if self.training_z_hat == "ste":
            medians = self.entropy_bottleneck._get_medians()
            z_hat = ste_round(z - medians) + medians
        hyper = self._hyper(z_hat)
        ctx = self._context_features(context, y.shape[-2:])
        decoded, likelihoods = [], []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            _, slice_likelihoods = self.gaussian_conditional(y_slice, scales, means)
            likelihoods.append(slice_likelihoods)
            # Later slices and the synthesis see rounded values (straight-through gradient).
            decoded.append(self._refine(i, support, ste_round(y_slice - means) + means))
        return torch.cat(decoded, 1), {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}

    def relaxed(self, y: torch.Tensor, z: torch.Tensor, quantise: Callable[[torch.Tensor], torch.Tensor],
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder refinement (mmcodec.refine): the loop of `compress` with `quantise` in place
        of rounding; returns y_tilde (after LRP) and the estimated bits of (y, z)."""
        medians = bottleneck_medians(self.entropy_bottleneck)
        z_tilde = quantise(z - medians) + medians
        bits = -torch.log2(bottleneck_likelihood(self.entropy_bottleneck, z_tilde)).sum()
        hyper = self._hyper(z_tilde)
        ctx = self._context_features(context, y.shape[-2:])
        decoded: list[torch.Tensor] = []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            y_tilde = quantise(y_slice - means) + means
            bits = bits - torch.log2(gaussian_likelihood(self.gaussian_conditional, y_tilde, scales, means)).sum()
            decoded.append(self._refine(i, support, y_tilde))
        return torch.cat(decoded, 1), bits

    @torch.no_grad()
    def compress(self, y: torch.Tensor, context: torch.Tensor | None = None, z: torch.Tensor | None = None
                 ) -> tuple[list[bytes], torch.Tensor]:
        """`z`: a hyper-latent to code instead of h_a(y) (a refined one, mmcodec.refine)."""
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y) if z is None else z)
        hyper = self._hyper(z_hat)
        ctx = self._context_features(context, y.shape[-2:])
        strings, decoded = [z_string], []
        for i, y_slice in enumerate(y.split(self.slice_sizes, 1)):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            scales, means = quantise_params(scales), quantise_params(means)
            indexes = self.gaussian_conditional.build_indexes(scales)
            strings.append(self.gaussian_conditional.compress(y_slice, indexes, means=means)[0])
            # Exactly what the decoder reconstructs: integer symbols + the same means.
            y_hat_slice = self.gaussian_conditional.quantize(y_slice, "dequantize", means)
            decoded.append(self._refine(i, support, y_hat_slice))
        return strings, torch.cat(decoded, 1)

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int],
                   context: torch.Tensor | None = None) -> torch.Tensor:
        if len(strings) != len(self.slice_sizes) + 1:
            raise ValueError(f"expected {len(self.slice_sizes) + 1} strings, got {len(strings)}")
        z_string, *slice_strings = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        hyper = self._hyper(z_hat)
        ctx = self._context_features(context, latent_hw)
        decoded: list[torch.Tensor] = []
        for i, slice_string in enumerate(slice_strings):
            support, scales, means = self._slice_params(i, hyper, decoded, ctx)
            scales, means = quantise_params(scales), quantise_params(means)
            indexes = self.gaussian_conditional.build_indexes(scales)
            y_hat_slice = self.gaussian_conditional.decompress([slice_string], indexes, means=means)
            decoded.append(self._refine(i, support, y_hat_slice))
        return torch.cat(decoded, 1)


class ChannelSliceCodec(SliceLoopCodec):
    """Channel-wise conditional entropy model (Minnen & Singh, ICIP 2020) with latent
    residual prediction (LRP), optional LCEB over previous slices and optional cross-modal
    context (CCEM, Wang et al.).

    y (M channels) is cut into `num_slices` slices coded one after another. The Gaussian
    mean and scale of slice i come from a support network over
      - the hyperprior (h_s(z_hat): M scale + M mean channels), and
      - slices 0..i-1 already decoded: raw (Minnen & Singh) or summarised by a Lite
        Transformer (`lceb=True`: global attention + convolution branch, "low-frequency
        context extraction").
    With `context_ch > 0`, a `context` tensor (another modality's decoded latent, same
    spatial size) can be passed to forward/compress/decompress: a Lite Transformer extracts
    its low-frequency features once, and per slice an agent cross-attention block (LCFB:
    queries from this slice's support features, keys/values from the context) adds a
    residual to the support features. The residual starts at zero, and `context=None`
    simply skips it (stage-1 training, or decoding without the other modality).
    After rounding, LRP adds 0.5*tanh(f(support, y_hat_i)) to reduce the quantisation error.

    Streams: [z, slice 0, ..., slice n-1] (the loop is `SliceLoopCodec`'s). The decoder must
    receive exactly the context the encoder used (the other modality's *decoded* latent), which makes decoding bit-exact.
    """

    def __init__(self, M: int, N: int, num_slices: int = 5, support_ch: int = 128, lceb: bool = True,
                 lceb_dim: int = 64, context_ch: int = 0, context_dim: int = 64, heads: int = 4,
                 agents: int = 7, lrp: bool = True) -> None:
        super().__init__()
        self.M, self.num_slices, self.context_ch = M, num_slices, context_ch
        self.slice_sizes = split_channels(M, num_slices)
        self.h_a = hyper_analysis(M, N)
        self.h_s = hyper_synthesis_mean_scale(N, M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

        before = [sum(self.slice_sizes[:i]) for i in range(num_slices)]
        self.previous = nn.ModuleList(
            LiteTransformer(before[i], lceb_dim, lceb_dim, heads=max(1, heads // 2)) if (lceb and i > 0)
            else nn.Identity() for i in range(num_slices))
        previous_ch = [0] + [lceb_dim if lceb else before[i] for i in range(1, num_slices)]
        self.support = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * M + previous_ch[i], support_ch, 3, padding=1), nn.GELU(),
                          nn.Conv2d(support_ch, support_ch, 3, padding=1), nn.GELU())
            for i in range(num_slices))
        self.mean_head = nn.ModuleList(nn.Conv2d(support_ch, s, 3, padding=1) for s in self.slice_sizes)
        self.scale_head = nn.ModuleList(nn.Conv2d(support_ch, s, 3, padding=1) for s in self.slice_sizes)
        self.lrp = nn.ModuleList(
            nn.Sequential(nn.Conv2d(support_ch + s, support_ch // 2, 3, padding=1), nn.GELU(),
                          nn.Conv2d(support_ch // 2, s, 3, padding=1)) for s in self.slice_sizes) if lrp else None
        if context_ch:
            self.context_extractor = LiteTransformer(context_ch, context_dim, context_dim, heads=max(1, heads // 2))
            self.fusion = nn.ModuleList(AgentFusionBlock(support_ch, context_dim, support_ch, context_dim, heads, agents)
                                        for _ in range(num_slices))

    # -- the SliceLoopCodec hooks ------------------------------------------------------------
    def _context_features(self, context: torch.Tensor | None, latent_hw: tuple[int, int]) -> torch.Tensor | None:
        if context is None:
            return None
        if not self.context_ch:
            raise ValueError("this slice codec was built without cross-modal context (context_ch=0)")
        if context.shape[-2:] != tuple(latent_hw):
            raise ValueError(f"context is {tuple(context.shape[-2:])}, latent is {tuple(latent_hw)}")
        return self.context_extractor(context)

    def _hyper(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.h_s(z_hat)

    def _slice_params(self, i: int, hyper: torch.Tensor, decoded: list[torch.Tensor],
                      context_features: torch.Tensor | None):
        parts = [hyper] if i == 0 else [hyper, self.previous[i](torch.cat(decoded, 1))]
        support = self.support[i](torch.cat(parts, 1))
        if context_features is not None:
            support = support + self.fusion[i](support, context_features)
        return support, self.scale_head[i](support), self.mean_head[i](support)

    def _refine(self, i: int, support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        if self.lrp is None:
            return y_hat_slice
        return y_hat_slice + 0.5 * torch.tanh(self.lrp[i](torch.cat([support, y_hat_slice], 1)))
