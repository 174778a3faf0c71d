"""The modalities mmcodec codes, and their channel counts after normalisation.

The one table every layer reads (image I/O, models, bench); it imports nothing.
"""
from __future__ import annotations

# rgb: visible colour; ir: thermal infrared (grey); depth: 8- or 16-bit depth map.
CHANNELS: dict[str, int] = {"rgb": 3, "ir": 1, "depth": 1}
