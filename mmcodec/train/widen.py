"""Widen a trained codec's latent (M channels -> more) without changing what it decodes.

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
"""
from __future__ import annotations

import torch

from mmcodec.models.separate import SeparateCoding


def _grown(old: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """`old` copied into the leading block of a zero tensor of `shape`."""
    new = torch.zeros(shape, dtype=old.dtype)
    new[tuple(slice(0, n) for n in old.shape)] = old
    return new


def _small(shape: torch.Size, std: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(shape, generator=gen) * std).to(dtype)


def codec_widths(model: SeparateCoding) -> dict[str, list[int]]:
    """[N, M] of each modality's codec: the `widths` keyword that rebuilds `model`."""
    return {m: [model.codecs[m].latent_codec.entropy_bottleneck.channels, model.codecs[m].gains.gain.shape[1]]
            for m in model.modalities}


def widen_latent(model: SeparateCoding, modality: str, new_M: int, synthesis_std: float = 1e-3,
                 seed: int = 0) -> SeparateCoding:
    """A copy of `model` whose `modality` codec has `new_M` latent channels (hyperprior context
    only), decoding every latent of the old model to the same image."""
    old_codec = model.codecs[modality]
    M = old_codec.gains.gain.shape[1]
    if new_M <= M:
        raise ValueError(f"new_M must exceed the current {M} channels")
    widths = codec_widths(model)
    widths[modality] = [widths[modality][0], new_M]
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
