"""The mean-scale hyperprior (Minnen et al. 2018 without the autoregressive part), and the
coding of the hyper-latent z that every latent codec here shares."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from mmcodec.entropy_adapter import bottleneck_likelihood, bottleneck_medians, gaussian_likelihood
from mmcodec.latent_codecs.determinism import IntegerNetworkCache, exact_indexes_and_means, quantise_params
from mmcodec.layers import hyper_analysis, hyper_synthesis_mean_scale, ste_round
from mmcodec.layers.integer import IntegerNetwork

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


def _no_context(context: torch.Tensor | None) -> None:
    if context is not None:
        raise ValueError("the plain mean-scale hyperprior takes no cross-modal context")


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
        self._integer_networks = IntegerNetworkCache()

    # `context`: what a cross-modal subclass (mmcodec.crossmodal.entropy_context) conditions the
    # scales and means on; the plain hyperprior takes none.
    def _params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _no_context(context)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._params(z_hat, context)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        # Rate from additive noise, decoder input from rounding (straight-through): the
        # synthesis transform trains on the values it will see at test time.
        y_hat = ste_round(y - means) + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def relaxed(self, y: torch.Tensor, z: torch.Tensor, quantise: Callable[[torch.Tensor], torch.Tensor],
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder refinement (mmcodec.refine): y_tilde and the estimated bits of coding the
        free latents (y, z), with `quantise` (a differentiable stand-in for rounding) applied
        where `compress` rounds: z around the prior's medians, y around the predicted means."""
        medians = bottleneck_medians(self.entropy_bottleneck)
        z_tilde = quantise(z - medians) + medians
        scales, means = self._params(z_tilde, context)
        y_tilde = quantise(y - means) + means
        bits = -(torch.log2(gaussian_likelihood(self.gaussian_conditional, y_tilde, scales, means)).sum()
                 + torch.log2(bottleneck_likelihood(self.entropy_bottleneck, z_tilde)).sum())
        return y_tilde, bits

    @torch.no_grad()
    def compress(self, y: torch.Tensor, z: torch.Tensor | None = None, context: torch.Tensor | None = None
                 ) -> tuple[list[bytes], torch.Tensor]:
        """`z`: a hyper-latent to code instead of h_a(y) (a refined one, mmcodec.refine)."""
        z_string, z_hat = code_hyper_latent(self.entropy_bottleneck, self.h_a(y) if z is None else z)
        indexes, means = self._coding_params(z_hat, context)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [y_strings[0], z_string], y_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_hw: tuple[int, int], context: torch.Tensor | None = None
                   ) -> torch.Tensor:
        y_string, z_string = strings
        z_hat = decode_hyper_latent(self.entropy_bottleneck, z_string, latent_hw)
        indexes, means = self._coding_params(z_hat, context)
        return self.gaussian_conditional.decompress([y_string], indexes, means=means)

    def integer_h_s(self) -> IntegerNetwork:
        """h_s with integer weights (mmcodec.layers.integer), built on first use and rebuilt
        whenever a weight of h_s changes (new tensor, device or in-place update)."""
        return self._integer_networks.get("h_s", self.h_s)

    def exact_params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scales and means of the integer h_s: integer-valued float64 in units of
        2^-activation_bits (mmcodec.layers.integer), identical on every platform with
        IEEE-754 doubles."""
        _no_context(context)
        scales, means = self.integer_h_s()(z_hat).chunk(2, 1)
        return scales, means

    def _coding_params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes and means for coding y: from the integer h_s (`exact_entropy_parameters`,
        format versions 3 and 4) or, for older streams, from the float h_s snapped to a grid."""
        if self.exact_entropy_parameters:
            return exact_indexes_and_means(self.gaussian_conditional, *self.exact_params(z_hat, context),
                                           z_hat.dtype)
        scales, means = self._quantised_params(z_hat, context)
        return self.gaussian_conditional.build_indexes(scales), means

    def _quantised_params(self, z_hat: torch.Tensor, context: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self._params(z_hat, context)
        return quantise_params(scales), quantise_params(means)
