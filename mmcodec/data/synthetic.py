"""Synthetic test images: smooth random content that compresses like a natural image.

Shared by the test suite and the measurement scripts (scripts/memory_vs_size.py), which
need pairs of any size without a dataset. numpy only.
"""
from __future__ import annotations

import numpy as np


def smooth_image(h: int, w: int, channels: int, seed: int, dtype: type = np.uint8) -> np.ndarray:
    """A smooth random image (sum of low-frequency waves), (H, W) or (H, W, channels), using
    80% of the dtype's range (uint8 or uint16)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = []
    for _ in range(channels):
        v = np.zeros((h, w), np.float32)
        for _ in range(4):
            fy, fx, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6.28)]
            v += np.sin(yy * fy + xx * fx + ph)
        planes.append((v - v.min()) / (np.ptp(v) + 1e-6))
    arr = np.stack(planes, -1) if channels > 1 else planes[0]
    peak = 65535 if dtype == np.uint16 else 255
    return np.rint(arr * (peak * 0.8) + peak * 0.1).astype(dtype)
