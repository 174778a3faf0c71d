"""Serial autoregressive spatial context (Minnen et al. 2018): one latent position at a time."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional

from mmcodec.entropy_adapter import rans_encode_with_indexes, rans_stream_decoder
from mmcodec.latent_codecs.determinism import (IntegerNetworkCache, exact_indexes_and_means, quantise_params,
                                               single_threaded)
from mmcodec.latent_codecs.hyperprior import code_hyper_latent, decode_hyper_latent
from mmcodec.latent_codecs.spatial_context import ContextHyperprior
from mmcodec.layers import MaskedConv2d, ste_round

def scale_indexes(gaussian_conditional: GaussianConditional, scales: torch.Tensor) -> torch.Tensor:
    """CDF table indexes for `scales`, equal to `GaussianConditional.build_indexes` (the first
    table scale at or above the lower-bounded scale) but one searchsorted instead of one
    comparison per table entry: the serial coder asks for a few indexes at every position."""
    scales = gaussian_conditional.lower_bound_scale(scales)
    table = gaussian_conditional.scale_table[:-1].contiguous()
    return torch.searchsorted(table, scales.contiguous())



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


class AutoregressiveMeanScale(ContextHyperprior):
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
        self._integer_networks = IntegerNetworkCache()

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
        y_string = rans_encode_with_indexes(
            self.gaussian_conditional, torch.stack(symbols).int().flatten().tolist(),
            torch.stack(indexes).flatten().tolist(), tables.cdfs, tables.lengths, tables.offsets)
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
        # The (guarded, see mmcodec.latent_codecs.rans_guard) decoder of this entropy model.
        decoder = rans_stream_decoder(self.gaussian_conditional, y_string)
        height, width = scan.latent_hw
        for i in range(height):
            for j in range(width):
                position_indexes, means = scan.params(i, j)
                local, cdfs, lengths, offsets = tables.subset(position_indexes.tolist())
                symbols = decoder.decode_stream(local, cdfs, lengths, offsets)
                scan.write(i, j, torch.tensor(symbols, dtype=means.dtype, device=means.device) + means)
        return scan.latent()
