"""BD-rate / BD-PSNR sanity: identities a correct implementation must satisfy."""
from __future__ import annotations

import numpy as np
import pytest

from mmcodec.bench.bdrate import bd, monotone_curve

RATE = [0.1, 0.25, 0.5, 1.0, 2.0]
PSNR = [28.0, 31.5, 34.6, 37.9, 41.0]


def test_curve_against_itself_is_zero():
    r = bd(RATE, PSNR, RATE, PSNR)
    assert r.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert r.bd_psnr == pytest.approx(0.0, abs=1e-9)
    assert r.warning is None and r.overlap_quality == 1.0


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_ten_percent_fewer_bits_is_minus_ten_percent(method):
    r = bd(RATE, PSNR, [0.9 * x for x in RATE], PSNR, method)
    assert r.bd_rate == pytest.approx(-10.0, abs=0.01)
    assert r.bd_psnr > 0


def test_constant_psnr_gain_is_bd_psnr():
    r = bd(RATE, PSNR, RATE, [p + 0.5 for p in PSNR])
    assert r.bd_psnr == pytest.approx(0.5, abs=1e-9)
    assert r.bd_rate < 0


def test_point_order_and_count_do_not_matter():
    dense_r = np.geomspace(0.1, 2.0, 9)
    dense_q = np.interp(np.log(dense_r), np.log(RATE), PSNR)
    r = bd(RATE, PSNR, list(reversed(dense_r * 1.2)), list(reversed(dense_q)))
    assert r.bd_rate == pytest.approx(20.0, abs=1.0)


def test_non_monotone_points_are_dropped():
    rate, q = monotone_curve([0.1, 0.2, 0.3, 0.4], [30.0, 29.0, 32.0, None])
    assert list(rate) == [0.1, 0.3] and list(q) == [30.0, 32.0]


def test_small_and_missing_overlap_are_flagged():
    far = bd(RATE, PSNR, RATE, [p + 30 for p in PSNR])
    assert far.bd_rate is None and "do not overlap" in far.warning
    small = bd(RATE, PSNR, RATE[-3:], [p + 5 for p in PSNR[-3:]])
    assert small.warning and "small overlap" in small.warning
    few = bd(RATE, PSNR, [0.5], [33.0])
    assert few.bd_rate is None and few.warning
