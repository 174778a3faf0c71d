"""Widen a trained codec (more latent channels, or wider transforms) without changing what it decodes.

The transforms of N = 64 / M = 96 channels cap the PSNR at high rates (BENCHMARKS, "The new rows
trained"); training a wider model from scratch costs the whole campaign again. Widening instead
keeps every trained weight and adds latent channels that start switched off:

- the analysis transform's new output channels have zero weights, so the new latent channels are
  0, round to 0, and the hyper-analysis ignores them (zero input weights): z is unchanged;
- the hyper-synthesis gives them mean 0 and the smallest scale, so coding their zeros costs
  almost nothing, and its old outputs are unchanged (its new hidden units get small random input
  weights, so they can learn, and zero output weights);
- the synthesis transform's weights from the new channels are small random numbers: they add
  nothing while the channels are 0, and give training a gradient to switch them on.

So the widened model decodes every image exactly as the trained one did (the streams differ only
by the near-free zeros of the new channels) and training can start where the old model stopped.

`widen_transforms` does the same for the hidden width of the analysis and synthesis transforms
(N of the Ballé stacks; the hyperprior keeps its N). New hidden units start alive and unheard:
their input weights are random at the layer's own scale, every weight *out of* them is zero, and
their GDN terms never enter an old unit's normalisation. The old units compute what they did, so
the images do not change (up to the order of float additions: on the shipped visible codec, 64 -> 96
channels, the streams of a 640x480 MSRS pair stay identical and 1 pixel in 10^6 moves by one code
value), and the zero weights out of the new units get a gradient at once (their activations are not
zero), unlike a latent channel, which must first pass rounding.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.layers import GDN

from mmcodec.models.separate import SeparateCoding


def _grown(old: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """`old` copied into the leading block of a zero tensor of `shape`."""
    new = torch.zeros(shape, dtype=old.dtype)
    new[tuple(slice(0, n) for n in old.shape)] = old
    return new


def _small(shape: torch.Size, std: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(shape, generator=gen) * std).to(dtype)


def codec_widths(model: SeparateCoding) -> dict[str, list[int]]:
    """[N, M] of each modality's codec, [N, M, transform N] where the transforms are wider than
    the hyperprior: the `widths` keyword that rebuilds `model`."""
    widths = {}
    for m in model.modalities:
        codec = model.codecs[m]
        N, T = codec.latent_codec.entropy_bottleneck.channels, codec.g_a[0].out_channels
        widths[m] = [N, codec.gains.gain.shape[1]] + ([T] if T != N else [])
    return widths


def widen_latent(model: SeparateCoding, modality: str, new_M: int, synthesis_std: float = 1e-3,
                 seed: int = 0) -> SeparateCoding:
    """A copy of `model` whose `modality` codec has `new_M` latent channels (hyperprior context
    only), decoding every latent of the old model to the same image."""
    old_codec = model.codecs[modality]
    M = old_codec.gains.gain.shape[1]
    if new_M <= M:
        raise ValueError(f"new_M must exceed the current {M} channels")
    widths = codec_widths(model)
    widths[modality][1] = new_M
    wide = SeparateCoding(model.modalities, num_rates=model.num_rates, widths=widths)
    old_state = model.state_dict()
    state = wide.state_dict()
    prefix = f"codecs.{modality}."
    gen = torch.Generator().manual_seed(seed)
    for key, target in state.items():
        old = old_state[key]
        if target.numel() == 0:               # entropy-coder tables: rebuilt by update() below
            continue
        if old.shape == target.shape:
            state[key] = old.clone()
            continue
        name = key[len(prefix):]
        if name == "g_s.0.weight":            # deconv (in = M, out = N, k, k): new inputs small random
            grown = _grown(old, target.shape)
            grown[M:] = _small(grown[M:].shape, synthesis_std, gen, old.dtype)
        elif name in ("latent_codec.h_s.0.weight", "latent_codec.h_s.2.weight"):
            # deconvs (in, out, k, k): weights *into* new hidden units small random, so they are
            # alive; the weights out of them (next layer's new inputs) stay zero, so no output moves.
            grown = _grown(old, target.shape)
            grown[:, old.shape[1]:] = _small(grown[:, old.shape[1]:].shape, synthesis_std, gen, old.dtype)
        elif name in ("gains.gain", "gains.inverse_gain"):   # (rates, M): the mean gain per rate
            grown = _grown(old, target.shape)
            grown[:, M:] = old.float().mean(1, keepdim=True).to(old.dtype)
        elif name in ("latent_codec.h_s.4.weight", "latent_codec.h_s.4.bias"):
            # Output channels are [scales (M), means (M)]: keep each half in place.
            grown = torch.zeros(target.shape, dtype=old.dtype)
            in_block = tuple(slice(0, n) for n in old.shape[1:])
            grown[(slice(0, M), *in_block)] = old[:M]
            grown[(slice(new_M, new_M + M), *in_block)] = old[M:]
            if name.endswith("bias"):   # new scales: the smallest the Gaussian conditional codes
                grown[M:new_M] = old_codec.latent_codec.gaussian_conditional.lower_bound_scale.bound.to(old.dtype)
        else:                                 # every other grown dimension starts at zero
            grown = _grown(old, target.shape)
        state[key] = grown
    wide.load_state_dict(state)
    wide.update(force=True)
    return wide


def widen_transforms(model: SeparateCoding, modality: str, new_N: int, seed: int = 0) -> SeparateCoding:
    """A copy of `model` whose `modality` codec has analysis and synthesis transforms `new_N`
    channels wide, decoding every latent of the old model to the same image."""
    old_codec = model.codecs[modality]
    N = old_codec.g_a[0].out_channels
    if new_N <= N:
        raise ValueError(f"new_N must exceed the current {N} transform channels")
    widths = codec_widths(model)
    widths[modality] = widths[modality][:2] + [new_N]
    wide = SeparateCoding(model.modalities, num_rates=model.num_rates, widths=widths)
    old_state = model.state_dict()
    state = wide.state_dict()
    gen = torch.Generator().manual_seed(seed)
    for key, target in state.items():
        old = old_state[key]
        if target.numel() == 0:               # entropy-coder tables: rebuilt by update() below
            continue
        if old.shape == target.shape:
            state[key] = old.clone()
            continue
        module_name, param = key.rsplit(".", 1)
        module = wide.get_submodule(module_name)
        grown = _grown(old, target.shape)
        if isinstance(module, GDN):
            reparam = module.beta_reparam if param == "beta" else module.gamma_reparam
            fresh = torch.ones(new_N) if param == "beta" else 0.1 * torch.eye(new_N)   # GDN's own start
            start = reparam.init(fresh).to(old.dtype)
            if param == "beta":
                grown[N:] = start[N:]
            else:                     # no term between an old and a new unit, either way
                grown = torch.full_like(grown, float(reparam.init(torch.zeros(1))))
                grown[:N, :N] = old
                grown[N:, N:] = start[N:, N:]
        elif param == "weight" and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            out_dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
            if target.shape[out_dim] > old.shape[out_dim]:   # new units: inputs at the layer's scale
                index = [slice(None)] * target.dim()
                index[out_dim] = slice(old.shape[out_dim], None)
                grown[tuple(index)] = _small(grown[tuple(index)].shape, float(old.float().std()), gen, old.dtype)
            # weights from new inputs to old units stay zero (the leading block is the old weight)
        # biases of new units start at zero
        state[key] = grown
    wide.load_state_dict(state)
    wide.update(force=True)
    return wide
