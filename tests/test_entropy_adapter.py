"""mmcodec.entropy_adapter, the one place that reads CompressAI internals (pinned 1.2.8):
each helper against CompressAI's own behaviour, so a CompressAI that moves them fails here."""
from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from mmcodec.entropy_adapter import (bottleneck_likelihood, bottleneck_medians, gaussian_likelihood, rans_decoder,
                                     rans_encode_with_indexes, rans_stream_decoder, set_rans_decoder)
from mmcodec.latent_codecs.rans_guard import BoundedDecoder, guard_entropy_decoders


def test_entropy_adapter_matches_compressai():
    """The one place that reads CompressAI internals: the same likelihoods as its own forward."""
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    torch.manual_seed(0)
    eb = EntropyBottleneck(4).eval()
    z = torch.randn(1, 4, 5, 6) * 3
    z_hat, lik = eb(z, training=False)
    torch.testing.assert_close(torch.round(z - bottleneck_medians(eb)) + bottleneck_medians(eb), z_hat)
    torch.testing.assert_close(bottleneck_likelihood(eb, z_hat), lik)
    gc = GaussianConditional(None).eval()
    y, scales, means = torch.randn(1, 4, 5, 6) * 4, torch.rand(1, 4, 5, 6) * 3 + 0.2, torch.randn(1, 4, 5, 6)
    y_hat, lik = gc(y, scales, means, training=False)
    torch.testing.assert_close(gaussian_likelihood(gc, y_hat, scales, means), lik)


def _conditional() -> tuple[GaussianConditional, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    gc = GaussianConditional(None).eval()
    gc.update_scale_table(get_scale_table(), force=True)
    y = torch.randn(1, 3, 4, 5) * 3
    return gc, y, gc.build_indexes(torch.rand(1, 3, 4, 5) * 4 + 0.3)


def test_rans_helpers_code_what_compressai_codes():
    gc, y, indexes = _conditional()
    symbols = torch.round(y).int()
    cdfs = [row[:n] for row, n in zip(gc.quantized_cdf.tolist(), gc.cdf_length.tolist())]
    stream = rans_encode_with_indexes(gc, symbols.flatten().tolist(), indexes.flatten().tolist(), cdfs,
                                      gc.cdf_length.tolist(), gc.offset.tolist())
    # CompressAI's own compress codes the same symbols to the same bytes.
    assert stream == gc.compress(y, indexes)[0]
    decoder = rans_stream_decoder(gc, stream)
    decoded = decoder.decode_stream(indexes.flatten().tolist(), cdfs, gc.cdf_length.tolist(), gc.offset.tolist())
    assert decoded == symbols.flatten().tolist()


def test_decoder_guard_wraps_the_rans_decoder():
    gc, y, indexes = _conditional()
    eb = EntropyBottleneck(2)
    model = torch.nn.ModuleDict({"gc": gc, "eb": eb})
    inner = rans_decoder(gc)
    assert inner is not None and rans_decoder(torch.nn.Conv2d(1, 1, 1)) is None
    guard_entropy_decoders(model)
    assert isinstance(rans_decoder(gc), BoundedDecoder) and isinstance(rans_decoder(eb), BoundedDecoder)
    guard_entropy_decoders(model)                      # idempotent: not wrapped twice
    assert rans_decoder(gc)._inner is inner
    strings = gc.compress(y, indexes)
    torch.testing.assert_close(gc.decompress(strings, indexes), torch.round(y))
    set_rans_decoder(gc, inner)
    assert rans_decoder(gc) is inner
