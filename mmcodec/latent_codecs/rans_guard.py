"""Keep CompressAI's rANS decoder inside the bytes it is given.

CompressAI's C++ decoder reads 32-bit words from the stream pointer without checking where
the stream ends. A valid stream ends exactly where the decoder stops, but a corrupted (or
crafted) one whose header claims a large latent makes the decoder read far past the buffer
and crash the whole process (SIGSEGV) instead of raising. A CRC does not prevent this: a file
with a correct CRC can still carry nonsense.

The guard appends zero bytes to every stream before it reaches the decoder. Decoding one
symbol renormalises at most once (one word), and escape (bypass) symbols, whose length is
read from the stream, are rare in the pseudo-random state a decoder runs on after the real
data; so a margin of two words per symbol plus a fixed slack keeps every read inside memory
we own. Valid streams decode identically: the decoder never reaches the padding.
The desynchronised output is then caught by the reconstruction hash in `mmcodec.codec`.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch

from mmcodec.entropy_adapter import rans_decoder, set_rans_decoder

_SLACK_WORDS = 1024
# Streams opened with set_stream (autoregressive models) are decoded piecewise, so their
# symbol count is unknown when the stream is opened; the codec sets a bound from the image size.
_stream_symbol_bound: contextvars.ContextVar[int] = contextvars.ContextVar("stream_symbol_bound",
                                                                           default=1 << 22)


def _padded(encoded: bytes | str, symbols: int) -> bytes:
    raw = encoded.encode("latin-1") if isinstance(encoded, str) else bytes(encoded)
    return raw + bytes(4 * (2 * symbols + _SLACK_WORDS))


class BoundedDecoder:
    """Drop-in proxy for `compressai.ans.RansDecoder` that pads each stream first."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def decode_with_indexes(self, encoded: bytes, indexes: list[int], *tables: Any) -> list[int]:
        return self._inner.decode_with_indexes(_padded(encoded, len(indexes)), indexes, *tables)

    def set_stream(self, encoded: bytes) -> None:
        self._padded_stream = _padded(encoded, _stream_symbol_bound.get())  # keep it alive
        self._inner.set_stream(self._padded_stream)

    def decode_stream(self, *args: Any) -> list[int]:
        return self._inner.decode_stream(*args)


def guard_entropy_decoders(model: torch.nn.Module) -> torch.nn.Module:
    """Wrap the rANS decoder of every CompressAI entropy model inside `model` (idempotent)."""
    for module in model.modules():
        decoder = rans_decoder(module)
        if decoder is not None and not isinstance(decoder, BoundedDecoder):
            set_rans_decoder(module, BoundedDecoder(decoder))
    return model


@contextlib.contextmanager
def stream_symbol_bound(symbols: int) -> Iterator[None]:
    """Bound on the symbols any one set_stream stream may hold while decoding one file."""
    token = _stream_symbol_bound.set(max(int(symbols), 1))
    try:
        yield
    finally:
        _stream_symbol_bound.reset(token)
