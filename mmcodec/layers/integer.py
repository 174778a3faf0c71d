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
(sums of products), in row bands to bound memory: no Winograd or FFT algorithm, whose
transforms would make the products non-integer. Transposed convolutions become stride-1
convolutions over the zero-stuffed input.
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
    weight: torch.Tensor          # (out, in, kh, kw), integer valued, float64
    bias: torch.Tensor            # (out,), integer valued at the accumulator scale
    stride: int
    padding: tuple[int, int, int, int]    # left, right, top, bottom
    input_stride: int = 1         # > 1: transposed convolution, zeros stuffed between inputs


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
                w = layer.weight.detach().double()
                k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
                bias = layer.bias.detach().double() if layer.bias is not None else w.new_zeros(w.shape[1 if isinstance(layer, nn.ConvTranspose2d) else 0])
                if isinstance(layer, nn.ConvTranspose2d):
                    # Transposed conv = stride-1 conv of the zero-stuffed input with the
                    # spatially flipped kernel, in/out swapped.
                    w = w.transpose(0, 1).flip(2, 3)
                    lo, hi = k - 1 - p, k - 1 - p + layer.output_padding[0]
                    conv = _Conv(w, bias, 1, (lo, hi, lo, hi), input_stride=s)
                else:
                    conv = _Conv(w, bias, s, (p, p, p, p))
                conv.weight = torch.round(conv.weight * 2.0 ** weight_bits)
                conv.bias = torch.round(conv.bias * acc_scale)
                self.layers.append(conv)
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
                l1 = layer.weight.abs().sum(dim=(1, 2, 3))
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
        # Input in value units -> integers in units of 2^-activation_bits (exact: a power-of-
        # two scaling and a rounding, elementwise). z_hat = symbol + float median: not an
        # integer, so it is rounded to the activation grid too.
        h = torch.round(x.double() * 2.0 ** self.activation_bits)
        limit = float(self.activation_limit) * 2.0 ** self.activation_bits
        rounding = 2.0 ** (self.weight_bits - 1)
        for layer in self.layers:
            if isinstance(layer, _Conv):
                acc = integer_conv2d(h.clamp(-limit, limit), layer)
                h = torch.floor((acc + rounding) / 2.0 ** self.weight_bits)
            else:
                h = torch.where(h < 0, torch.floor(h * layer.slope / 2.0 ** LEAK_BITS), h)
        return h


def _stuff_zeros(x: torch.Tensor, stride: int) -> torch.Tensor:
    if stride == 1:
        return x
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    out[..., ::stride, ::stride] = x
    return out


def integer_conv2d(x: torch.Tensor, conv: _Conv) -> torch.Tensor:
    """Accumulators (integer valued float64) of one convolution: im2col + matrix product,
    row band by row band."""
    x = F.pad(_stuff_zeros(x, conv.input_stride), conv.padding)
    out_ch, in_ch, k, _ = conv.weight.shape
    s = conv.stride
    b, _, height, width = x.shape
    out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
    weight = conv.weight.reshape(out_ch, in_ch * k * k)
    rows_per_band = max(1, _BAND_ELEMENTS // max(1, in_ch * k * k * out_w * b))
    bands = []
    for r0 in range(0, out_h, rows_per_band):
        r1 = min(out_h, r0 + rows_per_band)
        columns = F.unfold(x[..., r0 * s:(r1 - 1) * s + k, :], k, stride=s)   # (b, in*k*k, rows*out_w)
        bands.append((weight @ columns + conv.bias[:, None]).reshape(b, out_ch, r1 - r0, out_w))
    return torch.cat(bands, 2)


def integer_scale_indexes(scales: torch.Tensor, scale_table: torch.Tensor, activation_bits: int = ACTIVATION_BITS
                          ) -> torch.Tensor:
    """CDF indexes of integer scales (units of 2^-activation_bits), as
    `GaussianConditional.build_indexes` defines them (index = number of table scales, the
    last excluded, strictly below the scale; the lower bound at table[0] changes nothing),
    by integer comparison: s > t  <=>  s > floor(t) for an integer s."""
    thresholds = torch.floor(scale_table[:-1].double() * 2.0 ** activation_bits).to(scales.device)
    return torch.searchsorted(thresholds.contiguous(), scales.contiguous(), side="left").int()
