"""Checkerboard spatial context (He et al. 2021): two parallel passes."""
from __future__ import annotations

import torch
import torch.nn as nn

from mmcodec.latent_codecs.determinism import (IntegerNetworkCache, exact_indexes_and_means, quantise_params,
                                               single_threaded)
from mmcodec.latent_codecs.hyperprior import code_hyper_latent, decode_hyper_latent
from mmcodec.latent_codecs.spatial_context import ContextHyperprior
from mmcodec.layers import ste_round

def checkerboard_anchors(latent_hw: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean (H, W) map of the anchor positions: (row + column) even, (0, 0) included."""
    rows = torch.arange(latent_hw[0], device=device)[:, None]
    cols = torch.arange(latent_hw[1], device=device)[None, :]
    return (rows + cols) % 2 == 0


class CheckerboardMeanScale(ContextHyperprior):
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
        self._integer_networks = IntegerNetworkCache()

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
