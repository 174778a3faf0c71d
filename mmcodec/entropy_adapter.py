"""The one place that reads CompressAI entropy-model internals (pinned compressai==1.2.8).

- Encoder refinement (mmcodec.refine) needs likelihoods of *given* values, which CompressAI's
  public `forward` does not offer: it adds noise or rounds first. These helpers evaluate the
  same densities on values we choose.
- The serial (autoregressive) coder drives the rANS coder symbol by symbol, and the decoder
  guard (mmcodec.latent_codecs.rans_guard) wraps it: both need the entropy model's coder
  objects, which CompressAI keeps private.
tests/test_entropy_adapter.py checks every helper against CompressAI's own behaviour, so a
CompressAI change that moves these attributes fails loudly.
"""
from __future__ import annotations

from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional


def bottleneck_medians(entropy_bottleneck: EntropyBottleneck) -> torch.Tensor:
    """The factorised prior's per-channel medians, shaped (1, C, 1, 1): the quantisation
    offsets of z (EntropyBottleneck.compress codes round(z - median))."""
    return entropy_bottleneck.quantiles[:, :, 1].reshape(1, -1, 1, 1)


def bottleneck_likelihood(entropy_bottleneck: EntropyBottleneck, values: torch.Tensor) -> torch.Tensor:
    """Likelihood of `values` (B, C, H, W) under the factorised prior, lower-bounded as in training."""
    c = values.shape[1]
    flat = values.transpose(0, 1).reshape(c, 1, -1)
    likelihood, _, _ = entropy_bottleneck._likelihood(flat)
    if entropy_bottleneck.use_likelihood_bound:
        likelihood = entropy_bottleneck.likelihood_lower_bound(likelihood)
    b = values.shape[0]
    return likelihood.reshape(c, b, *values.shape[2:]).transpose(0, 1)


def gaussian_likelihood(gaussian_conditional: GaussianConditional, values: torch.Tensor, scales: torch.Tensor,
                        means: torch.Tensor) -> torch.Tensor:
    """Likelihood of `values` under N(means, scales) integrated over unit bins, lower-bounded."""
    likelihood = gaussian_conditional._likelihood(values, scales, means)
    if gaussian_conditional.use_likelihood_bound:
        likelihood = gaussian_conditional.likelihood_lower_bound(likelihood)
    return likelihood


def rans_encode_with_indexes(entropy_model: EntropyModel, symbols: list[int], indexes: list[int],
                             cdfs: list[list[int]], lengths: list[int], offsets: list[int]) -> bytes:
    """One rANS stream of `symbols`, each coded with the CDF row its index names."""
    return entropy_model.entropy_coder._encoder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)


def rans_stream_decoder(entropy_model: EntropyModel, stream: bytes) -> Any:
    """The model's rANS decoder, opened on `stream` for piecewise `decode_stream` calls."""
    decoder = entropy_model.entropy_coder._decoder
    decoder.set_stream(stream)
    return decoder


def rans_decoder(module: torch.nn.Module) -> Any | None:
    """The rANS decoder object of a CompressAI entropy model (None for any other module)."""
    coder = getattr(module, "entropy_coder", None) if isinstance(module, EntropyModel) else None
    return None if coder is None else coder._decoder


def set_rans_decoder(entropy_model: EntropyModel, decoder: Any) -> None:
    """Replace the model's rANS decoder (the bounds guard wraps it)."""
    entropy_model.entropy_coder._decoder = decoder
