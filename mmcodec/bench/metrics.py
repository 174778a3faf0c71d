"""Distortion metrics for the benchmark, on integer images as stored on disk.

Conventions (also written into results.json under "metrics"):
- PSNR = 10 log10(peak^2 / MSE), MSE over every pixel and channel; peak 255 for 8-bit and
  65535 for 16-bit data (depth in mm is compared on its raw uint16 values).
- Y / YUV 4:2:0: BT.601 full-range (JFIF) RGB -> YCbCr in floating point (no rounding),
  chroma subsampled by 2x2 box averaging (odd sizes edge-padded); YUV420 PSNR is the weighted
  mean (6 PSNR_Y + PSNR_U + PSNR_V) / 8 of the per-plane PSNRs (the JVET CTC convention).
- MS-SSIM: pytorch-msssim, 5 scales, Gaussian window of 11 taps; images whose short side is
  at most 160 px use the largest odd window that fits (reported per image as "msssim_win").
  Data range: the peak for RGB and infrared; for depth, the reference image's own value range
  (max - min), because a 65535 range makes SSIM's stabilising constants swamp the signal.
- Identical images have infinite PSNR; it is reported as PSNR_CAP dB so JSON stays valid.
- Big images: errors are summed over bands of rows and MS-SSIM maps are computed on bands
  above 8 M values, so metrics of a 12-megapixel image need a few hundred MB, not gigabytes.
"""
from __future__ import annotations

import math

import numpy as np

from mmcodec.quality import MSSSIM_WEIGHTS, PSNR_CAP, psnr_from_mse
from mmcodec.quality import ms_ssim as tensor_ms_ssim

# Rows per band when summing errors: float64 temporaries of a few MB even for 12-MP images.
# An even count keeps the 2x2 chroma blocks of YUV 4:2:0 inside one band.
_BAND_ROWS = 256
MSSSIM_SCALES = len(MSSSIM_WEIGHTS)
DEFAULT_WIN = 11

# BT.601 full-range RGB -> YCbCr (JFIF), offsets 128 on chroma for 8-bit.
_BT601 = np.array([[0.299, 0.587, 0.114],
                   [-0.168736, -0.331264, 0.5],
                   [0.5, -0.418688, -0.081312]], dtype=np.float64)


def peak_of(arr: np.ndarray) -> int:
    return 65535 if arr.dtype == np.uint16 else 255


def _squared_error(ref: np.ndarray, test: np.ndarray) -> float:
    d = ref.astype(np.float64) - test.astype(np.float64)
    return float(np.sum(d * d))


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    if ref.shape != test.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape}, decoded {test.shape}")
    total = sum(_squared_error(ref[r:r + _BAND_ROWS], test[r:r + _BAND_ROWS]) for r in range(0, ref.shape[0], _BAND_ROWS))
    return total / ref.size


def depth_errors(ref: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of a decoded depth map in the input's units (mm for RGB-D-D)."""
    err = mse(ref, test)
    return {"mse": err, "rmse": math.sqrt(err),
            "mae": float(np.mean(np.abs(ref.astype(np.float64) - test.astype(np.float64))))}


def psnr(ref: np.ndarray, test: np.ndarray, peak: float | None = None) -> float:
    return psnr_from_mse(mse(ref, test), peak_of(ref) if peak is None else peak)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) float64 Y, Cb, Cr in 0..255 (BT.601 full range)."""
    out = rgb.astype(np.float64) @ _BT601.T
    out[..., 1:] += 128.0
    return out


def subsample_420(plane: np.ndarray) -> np.ndarray:
    """2x2 box average; odd sizes are edge-padded first."""
    h, w = plane.shape
    p = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])


def yuv420_psnr(ref_rgb: np.ndarray, test_rgb: np.ndarray) -> dict[str, float]:
    """PSNR of Y, U (Cb), V (Cr) in 4:2:0 and their (6Y + U + V) / 8 weighting."""
    if ref_rgb.shape != test_rgb.shape:
        raise ValueError(f"shape mismatch: reference {ref_rgb.shape}, decoded {test_rgb.shape}")
    errors, counts = np.zeros(3), np.zeros(3)
    for r in range(0, ref_rgb.shape[0], _BAND_ROWS):
        a, b = rgb_to_ycbcr(ref_rgb[r:r + _BAND_ROWS]), rgb_to_ycbcr(test_rgb[r:r + _BAND_ROWS])
        planes = [(a[..., 0], b[..., 0])] + [(subsample_420(a[..., c]), subsample_420(b[..., c])) for c in (1, 2)]
        for c, (pa, pb) in enumerate(planes):
            errors[c] += _squared_error(pa, pb)
            counts[c] += pa.size
    py, pu, pv = (psnr_from_mse(errors[c] / counts[c], 255) for c in range(3))
    return {"psnr-y": py, "psnr-u420": pu, "psnr-v420": pv, "psnr-yuv420": (6 * py + pu + pv) / 8}


def is_grey_rgb(rgb: np.ndarray) -> bool:
    """True for a grey image, or an RGB one whose three channels are equal."""
    return rgb.ndim == 2 or bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def psnr_yuv420_metric(ref: np.ndarray, test: np.ndarray) -> float:
    """The `--metric yuv420` distortion of one image (the CCEM paper's protocol).

    Colour references: (6 PSNR_Y + PSNR_U + PSNR_V) / 8 in BT.601 full-range YCbCr with 2x2
    averaged chroma (yuv420_psnr). Grey references (2-D, or three equal channels) keep plain
    PSNR: their chroma is constant, and a codec that keeps it would score U and V at PSNR_CAP."""
    if ref.ndim == 2:
        return psnr(ref, test[..., 0] if test.ndim == 3 else test, 255)
    if is_grey_rgb(ref):
        return psnr(ref, as_rgb(test), 255)
    return yuv420_psnr(ref, test)["psnr-yuv420"]


# `mmcodec bench --metric`: the distortion BD tables rank visible images (and pairs) by.
# "rgb" (the default) is RGB PSNR; "yuv420" is psnr_yuv420_metric. Infrared and depth keep PSNR.
BENCH_METRICS = ("rgb", "yuv420")
DEFAULT_BENCH_METRIC = "rgb"
YUV420_KEY = "psnr-yuv420-or-grey"   # row key of psnr_yuv420_metric (rgb rows and pairs)


def msssim_window(height: int, width: int) -> int | None:
    """Window size for 5-scale MS-SSIM: 11 when the short side exceeds 160 px, else the
    largest odd size with (win - 1) * 16 < short side; None when even 3 does not fit."""
    short = min(height, width)
    limit = (DEFAULT_WIN - 1) * 2 ** (MSSSIM_SCALES - 1)
    if short > limit:
        return DEFAULT_WIN
    win = (short - 1) // 2 ** (MSSSIM_SCALES - 1) + 1
    win -= 1 - win % 2  # make it odd, rounding down
    while win >= 3 and (win - 1) * 2 ** (MSSSIM_SCALES - 1) >= short:
        win -= 2
    return win if win >= 3 else None


# pytorch-msssim holds about 15 float copies of the image; above this many values (2.8 MP
# RGB, 8 MP grey) each scale's maps are computed on bands of this many values instead.
_MSSSIM_WHOLE_VALUES = 1 << 23
_MSSSIM_BAND_VALUES = 1 << 21   # values per band


def ms_ssim(ref: np.ndarray, test: np.ndarray, data_range: float) -> tuple[float | None, int | None]:
    """MS-SSIM of two (H, W) or (H, W, C) images and the window size used (None if too small)."""
    import torch
    win = msssim_window(ref.shape[0], ref.shape[1])
    if win is None:
        return None, None

    def tensor(a: np.ndarray) -> "torch.Tensor":
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # integers: exact in float32
        return (t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None])

    band = None if ref.size <= _MSSSIM_WHOLE_VALUES else _MSSSIM_BAND_VALUES
    with torch.no_grad():
        value = tensor_ms_ssim(tensor(ref), tensor(test), float(data_range), win, band_values=band)
    return float(value.mean()), win


def msssim_db(value: float | None) -> float | None:
    if value is None:
        return None
    return PSNR_CAP if value >= 1.0 else min(PSNR_CAP, -10.0 * math.log10(1.0 - value))


def as_rgb(arr: np.ndarray) -> np.ndarray:
    """A visible image as (H, W, 3): grey images are replicated."""
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def modality_metrics(modality: str, ref: np.ndarray, test: np.ndarray,
                     msssim: bool = True) -> dict[str, float | int | None]:
    """All metrics of one decoded modality against its reference (integer arrays as on disk);
    `msssim=False` leaves out the MS-SSIM keys (the costliest, for callers that rank by PSNR)."""
    if modality == "rgb":
        ref, test = as_rgb(ref), as_rgb(test)
        out: dict[str, float | int | None] = {"psnr-rgb": psnr(ref, test, 255)}
        out.update(yuv420_psnr(ref, test))
        data_range: float = 255
    else:
        if test.ndim == 3:
            test = test[..., 0]
        peak = peak_of(ref)
        if modality == "depth":
            errors = depth_errors(ref, test)
            out = {"psnr": psnr_from_mse(errors["mse"], peak), "rmse": errors["rmse"], "mae": errors["mae"]}
            data_range = max(float(ref.max()) - float(ref.min()), 1.0)
        else:
            out = {"psnr": psnr_from_mse(mse(ref, test), peak)}
            data_range = peak
    if msssim:
        value, win = ms_ssim(ref, test, data_range)
        out["ms-ssim"] = value
        out["ms-ssim-db"] = msssim_db(value)
        out["msssim_win"] = win
    return out


# The distortion each modality is ranked by in BD tables, and for the pair.
PRIMARY_METRIC = {"rgb": "psnr-rgb", "ir": "psnr", "depth": "psnr", "pair": "psnr"}


def pair_metrics(per_modality: dict[str, dict[str, float | int | None]]) -> dict[str, float | None]:
    """Pair distortion as in the CCEM paper: the mean of the two modalities' PSNR.

    "psnr" uses RGB PSNR for the visible image; "psnr-yuv420" uses its YUV420 PSNR (the CCEM
    setting); "ms-ssim-db" is the mean of the modalities' MS-SSIM in dB."""
    def mean(key_of: dict[str, str]) -> float | None:
        vals = [per_modality[m].get(key_of.get(m, "psnr")) for m in per_modality]
        return None if any(v is None for v in vals) else float(np.mean(vals))
    return {"psnr": mean({"rgb": "psnr-rgb"}),
            "psnr-yuv420": mean({"rgb": "psnr-yuv420"}),
            "ms-ssim-db": mean({m: "ms-ssim-db" for m in per_modality})}
