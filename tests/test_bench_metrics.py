"""Benchmark metrics against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmcodec.bench import metrics as M


def test_psnr_one_pixel_error():
    ref = np.zeros((4, 4), np.uint8)
    test = ref.copy()
    test[1, 2] = 10                      # MSE = 100 / 16 = 6.25
    assert M.psnr(ref, test) == pytest.approx(10 * math.log10(255 ** 2 / 6.25))
    assert M.psnr(ref, ref) == M.PSNR_CAP


def test_psnr_16bit_uses_peak_65535():
    ref = np.full((2, 2), 1000, np.uint16)
    test = ref + np.array([[2, 0], [0, 0]], np.uint16)   # MSE = 4 / 4 = 1
    assert M.psnr(ref, test) == pytest.approx(20 * math.log10(65535))


def test_ycbcr_bt601_full_range_of_pure_red():
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    y, cb, cr = M.rgb_to_ycbcr(red)[0, 0]
    assert y == pytest.approx(0.299 * 255)
    assert cb == pytest.approx(128 - 0.168736 * 255)
    assert cr == pytest.approx(128 + 0.5 * 255)


def test_yuv420_psnr_red_vs_black():
    ref = np.zeros((4, 4, 3), np.uint8)
    ref[..., 0] = 255
    test = np.zeros_like(ref)
    got = M.yuv420_psnr(ref, test)
    py = 10 * math.log10(255 ** 2 / (0.299 * 255) ** 2)
    pu = 10 * math.log10(255 ** 2 / (0.168736 * 255) ** 2)
    pv = 10 * math.log10(255 ** 2 / (0.5 * 255) ** 2)
    assert got["psnr-y"] == pytest.approx(py)
    assert got["psnr-u420"] == pytest.approx(pu)
    assert got["psnr-v420"] == pytest.approx(pv)
    assert got["psnr-yuv420"] == pytest.approx((6 * py + pu + pv) / 8)


def test_subsample_420_pads_odd_sizes():
    plane = np.arange(9, dtype=np.float64).reshape(3, 3)
    out = M.subsample_420(plane)
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert out[1, 1] == pytest.approx(8.0)          # corner replicated four times
    assert out[0, 1] == pytest.approx((2 + 2 + 5 + 5) / 4)


def test_depth_rmse_mae_in_input_units():
    ref = np.array([[1000, 2000], [3000, 4000]], np.uint16)
    test = np.array([[1003, 2000], [2996, 4000]], np.uint16)   # errors 3 and -4
    m = M.modality_metrics("depth", ref, test)
    assert m["rmse"] == pytest.approx(math.sqrt((9 + 16) / 4))
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["psnr"] == pytest.approx(10 * math.log10(65535 ** 2 / (25 / 4)))
    assert m["ms-ssim"] is None          # 2x2 is too small for 5-scale MS-SSIM


def test_msssim_window_choice():
    assert M.msssim_window(161, 500) == 11
    assert M.msssim_window(160, 500) == 9          # (9-1)*16 = 128 < 160
    assert M.msssim_window(64, 64) == 3
    assert M.msssim_window(32, 64) is None
    for short in range(33, 400):
        w = M.msssim_window(short, 400)
        assert w % 2 == 1 and (w - 1) * 16 < short


def test_msssim_identical_and_degraded():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    m = M.modality_metrics("rgb", img, img)
    assert m["ms-ssim"] == pytest.approx(1.0, abs=1e-6)
    assert m["msssim_win"] == 5
    noisy = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    m2 = M.modality_metrics("rgb", img, noisy)
    assert 0 < m2["ms-ssim"] < 1
    assert m2["ms-ssim-db"] == pytest.approx(-10 * math.log10(1 - m2["ms-ssim"]))


def test_grey_visible_is_compared_as_rgb_and_pair_mean():
    ref = np.full((40, 40), 100, np.uint8)
    test = ref.copy()
    test[0, 0] = 110
    rgb = M.modality_metrics("rgb", ref, np.repeat(test[..., None], 3, 2))
    ir = M.modality_metrics("ir", ref, test)
    assert rgb["psnr-rgb"] == pytest.approx(ir["psnr"])
    pair = M.pair_metrics({"rgb": rgb, "ir": ir})
    assert pair["psnr"] == pytest.approx((rgb["psnr-rgb"] + ir["psnr"]) / 2)
    assert pair["psnr-yuv420"] == pytest.approx((rgb["psnr-yuv420"] + ir["psnr"]) / 2)
