"""Integer-exact evaluation of a small convolutional network (the hyper-synthesis h_s).

Why: the entropy parameters choose CDF tables and offset the decoded symbols, so the
decoder must compute them bit for bit as the encoder did. Float convolutions do not
guarantee that across thread counts, CPUs or CPU vs CUDA: they sum in different orders.
Integer arithmetic does (the idea of Ballé, Johnston, Minnen, "Integer networks for data
compression", ICLR 2019). Here every value is an integer held in float64:

- activations (the input included) are integers in units of 2^-activation_bits;
- weights are round(w * 2^weight_bits), biases round(b * 2^(activation_bits + weight_bits)),
  so a layer's accumulator is an integer at scale 2^(activation_bits + weight_bits);
- every convolution's input is clamped to +-ACTIVATION_LIMIT, and every product and every
  partial sum of its accumulator is an integer of magnitude below 2^53 (checked statically
  from the weights' L1 norms and that limit, `exactness_bounds`),
  hence exact in float64 whatever the order or grouping of the sums: any number of threads,
  any BLAS, any device that implements IEEE-754 double;
- the accumulator goes back to the activation scale by adding 2^(weight_bits-1) and dividing
  by 2^weight_bits with floor (round half up), exact; LeakyReLU multiplies negative values
  by a slope with `leak_bits` fractional bits and floors, also exact.

Convolutions are computed as im2col (`F.unfold`, pure data movement) and a matrix product
(sums of products), transposed convolutions as a matrix product and col2im (`F.fold`, sums
of the overlapping products), in row bands to bound memory: no Winograd or FFT algorithm,
whose transforms would make the products non-integer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

EXACT_LIMIT = 2.0 ** 53          # integers below this are exact in float64
ACTIVATION_BITS = 16             # network inputs, activations and outputs: units of 2^-16
WEIGHT_BITS = 16
LEAK_BITS = 24
# Every convolution's input is clamped to +-ACTIVATION_LIMIT (value units): far beyond what a
# trained h_s sees (|z_hat| and hidden activations of a few tens at most), it makes the static
# bound hold for any stream, crafted ones included. With the shipped models (max L1 norm of a
# weight row ~320 = 2^8.3) the bound is ~2^48.3 < 2^53: weight rows up to ~2^13 fit.
ACTIVATION_LIMIT = 2 ** 8
_BAND_ELEMENTS = 1 << 23         # im2col elements per band (64 MB of float64)


class ExactnessError(ValueError):
    """The chosen bit widths cannot guarantee exact float64 integer arithmetic."""


@dataclass
class _Conv:
    weight: torch.Tensor          # integer valued float64: (out, in, k, k), transposed (in, out, k, k)
    bias: torch.Tensor            # (out,), integer valued at the accumulator scale
    stride: int
    padding: int
    transposed: bool = False
    output_padding: int = 0

    def row_l1(self) -> torch.Tensor:
        """L1 norm of the weights reaching each output channel."""
        return self.weight.abs().sum(dim=(0, 2, 3) if self.transposed else (1, 2, 3))


@dataclass
class _LeakyReLU:
    slope: int                    # negative slope * 2^LEAK_BITS, rounded


def _plain(conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"integer path supports plain convolutions only, not {conv}")
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1] \
            or conv.padding[0] != conv.padding[1]:
        raise ValueError(f"integer path supports square kernels, strides and paddings only, not {conv}")


class IntegerNetwork:
    """A `nn.Sequential` of Conv2d / ConvTranspose2d / (Leaky)ReLU evaluated exactly.

    Built once from the float weights (`MeanScaleHyperprior` caches it); calling it maps a
    float input x to integer-valued float64 outputs y, meaning y * 2^-activation_bits.
    """

    def __init__(self, network: nn.Sequential, activation_bits: int = ACTIVATION_BITS,
                 weight_bits: int = WEIGHT_BITS, activation_limit: int = ACTIVATION_LIMIT) -> None:
        self.activation_bits, self.weight_bits = activation_bits, weight_bits
        self.activation_limit = activation_limit
        self.layers: list[_Conv | _LeakyReLU] = []
        acc_scale = 2.0 ** (activation_bits + weight_bits)
        for layer in network:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                _plain(layer)
                transposed = isinstance(layer, nn.ConvTranspose2d)
                # A masked (causal) convolution is exact with its masked weights.
                weight = layer.masked_weight() if hasattr(layer, "masked_weight") else layer.weight
                w = torch.round(weight.detach().double() * 2.0 ** weight_bits)
                out_ch = w.shape[1] if transposed else w.shape[0]
                b = layer.bias.detach().double() if layer.bias is not None else w.new_zeros(out_ch)
                self.layers.append(_Conv(w, torch.round(b * acc_scale), layer.stride[0], layer.padding[0], transposed,
                                         layer.output_padding[0] if transposed else 0))
            elif isinstance(layer, nn.LeakyReLU):
                self.layers.append(_LeakyReLU(round(layer.negative_slope * 2 ** LEAK_BITS)))
            elif isinstance(layer, nn.ReLU):
                self.layers.append(_LeakyReLU(0))
            else:
                raise ValueError(f"integer path has no exact form of {type(layer).__name__}")
        self.exactness_bounds()  # raises now, at build time, rather than while coding

    def exactness_bounds(self) -> list[float]:
        """Largest possible |accumulator| of each layer (and |x * slope| of each LeakyReLU),
        given that every convolution's input is clamped to +-activation_limit; raise
        `ExactnessError` if any can reach 2^53.

        A partial sum of products is bounded by the sum of the absolute products, at most
        sum_i |W[o, i]| * max|x| + |b[o]| (+ the rounding offset), so bounding the full sum
        bounds every partial sum, in any order.
        """
        limit = float(self.activation_limit) * 2.0 ** self.activation_bits
        bounds, x_max = [], limit
        for n, layer in enumerate(self.layers):
            if isinstance(layer, _Conv):
                x_max = min(x_max, limit)
                l1 = layer.row_l1()
                bound = float((l1 * x_max + layer.bias.abs()).max()) + 2.0 ** (self.weight_bits - 1)
                x_max = float(torch.floor(torch.tensor(bound / 2.0 ** self.weight_bits))) + 1
            else:
                bound = x_max * max(layer.slope, 1)
            bounds.append(bound)
            if not bound < EXACT_LIMIT:
                raise ExactnessError(
                    f"layer {n}: accumulator bound {bound:.3g} >= 2^53 with {self.weight_bits} weight bits, "
                    f"{self.activation_bits} activation bits and activations up to {self.activation_limit}")
        return bounds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.to_fixed_point(x))

    def to_fixed_point(self, x: torch.Tensor) -> torch.Tensor:
        """Values -> integers in units of 2^-activation_bits (exact: a power-of-two scaling and
        a rounding, elementwise). z_hat = symbol + float median is not an integer: it is
        rounded to the activation grid too."""
        return torch.round(x.double() * 2.0 ** self.activation_bits)

    def run(self, h: torch.Tensor, layers: list | None = None) -> torch.Tensor:
        """The network (or `layers`, e.g. one layer with another padding) on inputs already
        in fixed point."""
        limit = float(self.activation_limit) * 2.0 ** self.activation_bits
        rounding = 2.0 ** (self.weight_bits - 1)
        for layer in self.layers if layers is None else layers:
            if isinstance(layer, _Conv):
                acc = integer_conv2d(h.clamp(-limit, limit), layer)
                h = torch.floor((acc + rounding) / 2.0 ** self.weight_bits)
            else:
                h = torch.where(h < 0, torch.floor(h * layer.slope / 2.0 ** LEAK_BITS), h)
        return h


def _row_bands(rows: int, elements_per_row: int) -> list[tuple[int, int]]:
    step = max(1, _BAND_ELEMENTS // max(1, elements_per_row))
    return [(r0, min(rows, r0 + step)) for r0 in range(0, rows, step)]


def integer_conv2d(x: torch.Tensor, conv: _Conv) -> torch.Tensor:
    """Accumulators (integer valued float64) of one convolution, bias included."""
    acc = _transposed_conv(x, conv) if conv.transposed else _conv(x, conv)
    return acc + conv.bias[:, None, None]


def _conv(x: torch.Tensor, conv: _Conv) -> torch.Tensor:
    """im2col + matrix product, band of output rows by band."""
    out_ch, in_ch, k, _ = conv.weight.shape
    s, p = conv.stride, conv.padding
    x = F.pad(x, (p, p, p, p))
    b, _, height, width = x.shape
    out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
    weight = conv.weight.reshape(out_ch, in_ch * k * k)
    bands = []
    for r0, r1 in _row_bands(out_h, in_ch * k * k * out_w * b):
        columns = F.unfold(x[..., r0 * s:(r1 - 1) * s + k, :], k, stride=s)   # (b, in*k*k, rows*out_w)
        bands.append((weight @ columns).reshape(b, out_ch, r1 - r0, out_w))
    return torch.cat(bands, 2)


def _transposed_conv(x: torch.Tensor, conv: _Conv) -> torch.Tensor:
    """Matrix product giving every input pixel's k x k contribution to every output channel,
    then col2im (`F.fold`), which adds the overlapping contributions: sums of integers.
    Band of input rows by band; overlapping output rows of consecutive bands are added."""
    in_ch, out_ch, k, _ = conv.weight.shape
    s, p = conv.stride, conv.padding
    b, _, height, width = x.shape
    full_h, full_w = (height - 1) * s + k, (width - 1) * s + k
    weight = conv.weight.reshape(in_ch, out_ch * k * k).T          # (out*k*k, in)
    full = x.new_zeros(b, out_ch, full_h, full_w)
    for r0, r1 in _row_bands(height, out_ch * k * k * width * b):
        columns = weight @ x[..., r0:r1, :].reshape(b, in_ch, -1)   # (b, out*k*k, rows*width)
        band_h = (r1 - r0 - 1) * s + k
        full[..., r0 * s:r0 * s + band_h, :] += F.fold(columns, (band_h, full_w), k, stride=s)
    out_h, out_w = full_h - 2 * p + conv.output_padding, full_w - 2 * p + conv.output_padding
    full = F.pad(full, (0, max(0, p + out_w - full_w), 0, max(0, p + out_h - full_h)))
    return full[..., p:p + out_h, p:p + out_w]


def integer_scale_indexes(scales: torch.Tensor, scale_table: torch.Tensor, activation_bits: int = ACTIVATION_BITS
                          ) -> torch.Tensor:
    """CDF indexes of integer scales (units of 2^-activation_bits), as
    `GaussianConditional.build_indexes` defines them (index = number of table scales, the
    last excluded, strictly below the scale; the lower bound at table[0] changes nothing),
    by integer comparison: s > t  <=>  s > floor(t) for an integer s."""
    thresholds = torch.floor(scale_table[:-1].double() * 2.0 ** activation_bits).to(scales.device)
    return torch.searchsorted(thresholds.contiguous(), scales.contiguous(), side="left").int()
