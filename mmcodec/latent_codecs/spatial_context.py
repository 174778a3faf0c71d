"""What the spatial-context latent codecs (checkerboard, autoregressive) share: the mean-scale
hyperprior plus an entropy-parameters network over [hyperprior, context]."""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from mmcodec.layers import hyper_analysis, hyper_synthesis_mean_scale

def entropy_parameters_network(M: int) -> nn.Sequential:
    """[hyperprior scales and means, a 2M-channel context] -> a correction of the scales and
    means. 1x1 convolutions only (Minnen et al. 2018 widths): the serial coder evaluates it at
    one position at a time. The last layer starts at zero, so the correction starts at zero."""
    net = nn.Sequential(nn.Conv2d(4 * M, 10 * M // 3, 1), nn.LeakyReLU(),
                        nn.Conv2d(10 * M // 3, 8 * M // 3, 1), nn.LeakyReLU(),
                        nn.Conv2d(8 * M // 3, 2 * M, 1))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class ContextHyperprior(nn.Module):
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
        self.entropy_parameters = entropy_parameters_network(M)

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
