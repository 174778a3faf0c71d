"""What a stream records about its tiled synthesis, and the latent geometry behind it.

These are part of the .mmc format (docs/bitstream.md), so they live with the bitstream and
import nothing: reading a header must not need torch. mmcodec.tiling does the tiling.
"""
from __future__ import annotations

from dataclasses import dataclass

LATENT_STRIDE = 16          # pixels per latent in every tileable model (4 stride-2 layers)
MIN_TILE = 64               # pixels; smaller tiles would spend most of their work on halos
MAX_TILE = 1 << 16          # pixels; the .mmc format's largest side
MAX_HALO_LATENTS = 16       # a stream asking for more is corrupted (bounds the decoder's work)


@dataclass(frozen=True)
class Tiling:
    """How a stream's synthesis is tiled, in latents (1 latent = LATENT_STRIDE pixels)."""

    tile: int   # longest side of a tile's core
    halo: int   # latents of context on every side of a core (clipped at the image border)

    @property
    def tile_pixels(self) -> int:
        return self.tile * LATENT_STRIDE

    @property
    def halo_pixels(self) -> int:
        return self.halo * LATENT_STRIDE
