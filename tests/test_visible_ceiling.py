"""A joint model must not cap the visible image's quality (issue 22).

The shipped Lu model once coded visible images with a frozen 4,000-step separate codec: on
dark night scenes its top rate point stayed 3-5 dB under `ir-vi/separate`'s. A synthetic dark
street scene (dim smooth content, faint sensor noise, a few bright lamps; made in code) shows
that within seconds, so every installed ir-vi model is checked against the separate codec.
"""
from __future__ import annotations

import numpy as np
import pytest

import mmcodec
from mmcodec.data.synthetic import smooth_image
from mmcodec.models.registry import installed_models

# At the top rate point, against ir-vi/separate. The ceiling this guards against was 3-5 dB
# and flat in rate. ir-vi/ccem (less trained) sits 1.8 dB under separate's 31,500-step weights
# and 2.0 dB under the 57,000-step ones while still rising with rate: a budget gap, not a
# ceiling, hence 2.5 dB plus the check that the top quality step still buys PSNR.
MAX_DEFICIT_DB = 2.5
MIN_TOP_STEP_GAIN_DB = 0.5   # PSNR(top quality) - PSNR(the one below): flat means saturated


def dark_scene(h: int = 192, w: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    vi = smooth_image(h, w, 3, seed=11).astype(np.float64) * 0.12 + rng.normal(0, 1.0, (h, w, 3))
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in ((h // 5, w // 4), (h // 2, 3 * w // 4), (3 * h // 4, w // 3)):   # street lamps
        vi += 230 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 72.0)[..., None] * np.array([1.0, 0.85, 0.5])
    return np.clip(vi, 0, 255).round().astype(np.uint8), smooth_image(h, w, 1, seed=12)


def visible_psnr(model: str, vi: np.ndarray, ir: np.ndarray, from_top: int = 0) -> float:
    """Visible PSNR at the model's top quality (`from_top` = 1: the quality below it)."""
    codec = mmcodec.load(model)
    quality = codec.installed.qualities[-1 - from_top]
    out = codec.decompress(codec.compress(rgb=vi, ir=ir, quality=quality))
    mse = np.mean((out["rgb"].astype(np.float64) - vi) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


JOINT = sorted(m.name for m in installed_models() if m.pair == "ir-vi" and m.name != "ir-vi/separate")


@pytest.mark.parametrize("model", JOINT)
def test_no_visible_ceiling_on_a_dark_scene(model):
    vi, ir = dark_scene()
    assert vi.mean() < 25          # dark: most pixels sit in the lowest tenth of the range
    reference = visible_psnr("ir-vi/separate", vi, ir)
    top = visible_psnr(model, vi, ir)
    assert top >= reference - MAX_DEFICIT_DB
    assert top - visible_psnr(model, vi, ir, from_top=1) >= MIN_TOP_STEP_GAIN_DB
