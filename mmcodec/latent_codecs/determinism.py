"""What makes a latent codec's decoder repeat its encoder bit for bit (docs/bitstream.md,
Determinism).

Values that select a CDF (scales -> indexes) or offset the quantiser (means) must be equal
at both ends. Two ways:
- the exact path (format versions 3 and 4): integer copies of the entropy-parameter
  networks (mmcodec.layers.integer), identical on every platform;
- the float path (older streams, channel-slice codecs): `quantise_params` snaps the values
  to a grid, and `single_threaded` fixes the CPU kernels' summation order.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.nn as nn
from compressai.entropy_models import GaussianConditional

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


class IntegerNetworkCache:
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
