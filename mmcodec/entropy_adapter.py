"""The one place that reads CompressAI entropy-model internals (pinned compressai==1.2.8).

Encoder refinement (mmcodec.refine) needs likelihoods of *given* values, which CompressAI's
public `forward` does not offer: it adds noise or rounds first. These helpers evaluate the
same densities on values we choose. tests/test_entropy_adapter.py checks them against
CompressAI's own forward, so a CompressAI change that moves these attributes fails loudly.
"""
from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional


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
