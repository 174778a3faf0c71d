"""Bjøntegaard deltas (BD-rate, BD-PSNR) via the `bjontegaard` package.

Both curves are first cleaned: points sorted by rate, and points whose quality does not rise
with rate dropped (piecewise-cubic interpolation needs a monotone curve). The deltas are
integrated over the overlapping range only: quality range for BD-rate, log-rate range for
BD-PSNR. `overlap` is the overlapping part of that range divided by the union of both curves'
ranges (the package's measure); below MIN_OVERLAP the result carries a warning.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

MIN_OVERLAP = 0.5


@dataclass
class BDResult:
    bd_rate: float | None     # percent; negative = fewer bits than the anchor at equal quality
    bd_psnr: float | None     # quality units (dB); positive = better than the anchor at equal rate
    overlap_quality: float    # fraction of the union quality range both curves cover
    overlap_rate: float       # same along log rate
    points: tuple[int, int]   # points used (anchor, test) after cleaning
    warning: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def monotone_curve(rate: Sequence[float], quality: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those whose quality strictly exceeds every
    lower-rate point kept so far; missing or non-finite values are dropped."""
    pts = sorted((float(r), float(q)) for r, q in zip(rate, quality)
                 if r is not None and q is not None and r > 0 and math.isfinite(r) and math.isfinite(q))
    kept: list[tuple[float, float]] = []
    for r, q in pts:
        if kept and r == kept[-1][0]:
            continue
        if not kept or q > kept[-1][1]:
            kept.append((r, q))
    if not kept:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(kept)
    return arr[:, 0], arr[:, 1]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    return max(hi - lo, 0.0) / span if span > 0 else 1.0


def bd(anchor_rate: Sequence[float], anchor_quality: Sequence[float | None],
       test_rate: Sequence[float], test_quality: Sequence[float | None],
       method: str = "pchip") -> BDResult:
    """BD-rate (%) and BD-PSNR of `test` against `anchor`."""
    import bjontegaard
    ra, qa = monotone_curve(anchor_rate, anchor_quality)
    rt, qt = monotone_curve(test_rate, test_quality)
    if len(ra) < 2 or len(rt) < 2:
        return BDResult(None, None, 0.0, 0.0, (len(ra), len(rt)), "fewer than 2 usable RD points")
    ov_q = _overlap(qa, qt)
    ov_r = _overlap(np.log10(ra), np.log10(rt))
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = bjontegaard.bd_rate(ra, qa, rt, qt, method, require_matching_points=False, min_overlap=0) \
            if ov_q > 0 else float("nan")
        psnr = bjontegaard.bd_psnr(ra, qa, rt, qt, method, require_matching_points=False, min_overlap=0) \
            if ov_r > 0 else float("nan")
    if ov_q == 0 or ov_r == 0:
        notes.append("curves do not overlap")
    elif min(ov_q, ov_r) < MIN_OVERLAP:
        notes.append(f"small overlap (quality {100 * ov_q:.0f}%, rate {100 * ov_r:.0f}%)")

    def finite(v: float) -> float | None:
        return float(v) if v is not None and math.isfinite(v) else None
    return BDResult(finite(rate), finite(psnr), round(ov_q, 4), round(ov_r, 4), (len(ra), len(rt)),
                    "; ".join(notes) or None)
