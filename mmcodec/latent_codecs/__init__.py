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

import torch.nn as nn

from mmcodec.latent_codecs.autoregressive import AutoregressiveMeanScale, scale_indexes
from mmcodec.latent_codecs.channel_slice import ChannelSliceCodec, SliceLoopCodec, split_channels
from mmcodec.latent_codecs.checkerboard import CheckerboardMeanScale, checkerboard_anchors
from mmcodec.latent_codecs.determinism import (entropy_parameter_path, exact_indexes_and_means,
                                               has_exact_entropy_parameters, quantise_params, single_threaded)
from mmcodec.latent_codecs.hyperprior import MeanScaleHyperprior, code_hyper_latent, decode_hyper_latent

__all__ = ["AutoregressiveMeanScale", "ChannelSliceCodec", "CheckerboardMeanScale", "LATENT_CONTEXTS",
           "MeanScaleHyperprior", "SliceLoopCodec", "build_latent_codec", "checkerboard_anchors",
           "code_hyper_latent", "decode_hyper_latent", "entropy_parameter_path", "exact_indexes_and_means",
           "has_exact_entropy_parameters", "quantise_params", "scale_indexes", "single_threaded", "split_channels"]

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
