"""VVC (libvvenc via imageio-ffmpeg), HEVC 4:2:0, the yuv420 bench metric and --report.

Fixtures are tiny synthetic images made here; nothing reads the shared data."""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcodec.bench import classical as C
from mmcodec.bench import metrics as M
from mmcodec.errors import BadInputError

from conftest import smooth_image

pytest.importorskip("imageio_ffmpeg", reason="vvc needs imageio-ffmpeg (requirements.lock)")


def test_vvc_round_trips_rgb_and_grey():
    codec = C.get_codec("vvc")
    for img in (smooth_image(64, 64, 3, seed=1), smooth_image(64, 64, 1, seed=2), smooth_image(33, 47, 3, seed=3)):
        sizes = []
        for qp in (17, 32, 47):
            out = codec.code(img, qp)
            assert out.decoded.shape == img.shape and out.decoded.dtype == np.uint8
            sizes.append(out.nbytes)
            if qp == 17:
                assert M.psnr(img, out.decoded) > 40
        assert sizes[0] > sizes[1] > sizes[2] > 0          # higher QP, fewer bytes


def test_vvc_counts_the_raw_stream():
    img = smooth_image(64, 64, 1, seed=4)
    data = C._vvc_encode(img, 32, 8)
    assert data.startswith(b"\x00\x00\x00\x01") or data.startswith(b"\x00\x00\x01")   # Annex B, no container
    assert C.get_codec("vvc").code(img, 32).nbytes == len(data)


def test_vvc_grey_chroma_is_neutral_and_16bit_not_supported():
    grey = smooth_image(8, 8, 1, seed=5)
    yuv = C._to_yuv420_10bit(grey)
    assert np.array_equal(yuv[:64], grey.ravel().astype(np.uint16) * 4)
    assert np.all(yuv[64:] == C.VVC_NEUTRAL_CHROMA) and yuv.size == 64 + 2 * 16
    depth = smooth_image(16, 16, 1, seed=6, dtype=np.uint16)
    codec = C.get_codec("vvc")
    assert not codec.supports(depth)
    with pytest.raises(BadInputError):
        codec.code(depth, 32)


def test_vvc_chroma_upsampling_keeps_the_420_planes():
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 255, (5, 6))
    up = C._upsample_chroma(c)
    assert up.shape == (10, 12)
    assert np.allclose(M.subsample_420(up), c)


@pytest.mark.parametrize("qp", [64, -1, 30.5])
def test_vvc_bad_qp(qp):
    with pytest.raises(BadInputError, match="QP must be an integer in 0..63"):
        C.get_codec("vvc").code(smooth_image(16, 16, 3, seed=0), qp)


def test_vvc_missing_ffmpeg(monkeypatch, tmp_path):
    import imageio_ffmpeg
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(BadInputError) as info:
        C.get_codec("vvc").code(smooth_image(16, 16, 3, seed=0), 32)
    msg = str(info.value)
    assert "no-such-ffmpeg" in msg and "imageio-ffmpeg" in msg and "\n" not in msg


def test_hevc420_round_trips_and_differs_from_444():
    rgb = smooth_image(64, 64, 3, seed=7)
    h420, h444 = C.get_codec("hevc420"), C.get_codec("hevc")
    out = h420.code(rgb, 22)
    assert out.decoded.shape == rgb.shape and M.psnr(rgb, out.decoded) > 35
    assert h420.code(rgb, 42).nbytes < out.nbytes
    assert C._hevc420_encode(rgb, 22, 8) != C._hevc_encode(rgb, 22, 8)
    assert h420.settings()["chroma"] == "420" and h444.settings()["chroma"] == "444"
    grey = smooth_image(64, 64, 1, seed=8)
    assert h420.code(grey, 22).decoded.shape == grey.shape


def test_yuv420_metric_by_hand():
    # 2x2 image: Y error only in one pixel, chroma error in the 2x2 mean.
    ref = np.array([[(10, 20, 30), (200, 100, 50)], [(0, 255, 0), (90, 90, 120)]], np.uint8)   # colour
    test = ref.copy()
    test[0, 0] += np.uint8(4)               # grey step: dY = 4, dCb = dCr = 0
    test[1, 1, 2] += np.uint8(8)            # blue step: dY = 0.114*8, dCb = 0.5*8, dCr = -0.081312*8
    dy = np.array([4.0, 0.0, 0.0, 0.114 * 8])
    mse_y = float(np.mean(dy ** 2))
    mse_u = (0.5 * 8 / 4) ** 2              # one 4:2:0 sample: the mean of the four Cb errors
    mse_v = (0.081312 * 8 / 4) ** 2
    p = [10 * math.log10(255 ** 2 / e) for e in (mse_y, mse_u, mse_v)]
    expected = (6 * p[0] + p[1] + p[2]) / 8
    assert M.psnr_yuv420_metric(ref, test) == pytest.approx(expected, abs=1e-9)
    # grey references keep plain PSNR (2-D, or three equal channels)
    g = np.full((2, 2), 100, np.uint8)
    g2 = g.copy()
    g2[0, 0] = 104
    assert M.psnr_yuv420_metric(g, g2) == pytest.approx(10 * math.log10(255 ** 2 / 4))
    assert M.psnr_yuv420_metric(M.as_rgb(g), M.as_rgb(g2)) == pytest.approx(10 * math.log10(255 ** 2 / 4))


def _write_pairs(root: Path) -> Path:
    for i, (h, w) in enumerate([(64, 80), (72, 64)]):
        for sub in ("vi", "ir"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            arr = smooth_image(h, w, 3, seed=i) if sub == "vi" else smooth_image(h, w, 1, seed=50 + i)
            Image.fromarray(arr).save(root / sub / f"p{i}.png")
    return root


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcodec", "bench", *args], capture_output=True, text=True,
                          timeout=300)


RATES = ["--rates", "jpeg=10,40,80", "--rates", "hevc=42,32,22"]


def test_bench_report_and_yuv420_metric(tmp_path):
    data, out = _write_pairs(tmp_path / "pairs"), tmp_path / "res"
    proc = _bench("--data", str(data), "--codecs", "hevc,jpeg", "--anchor", "hevc", "--out", str(out),
                  "--report", *RATES)
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and not any(r.startswith(("http:", "https:", "/")) for r in refs)
    for r in refs:
        assert (out / r).is_file(), r
    assert sum("_crop.png" in r for r in refs) == 2 * 2 * 3          # pairs x modalities x (original + 2 codecs)
    assert "rd_rgb.png" in refs and "<table>" in page and "BD-rate" in page
    crop = Image.open(out / "report_images" / "p0_rgb_original_crop.png")
    assert crop.size == (80 * 3, 64 * 3)                              # image smaller than the 128 crop
    default_md = (out / "bd_rate.md").read_text()
    cache = sorted((out / "cache").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in cache}

    # --metric yuv420 reuses every cell and ranks rgb / pair by the YUV 4:2:0 PSNR.
    proc = _bench("--data", str(data), "--codecs", "hevc,jpeg", "--anchor", "hevc", "--out", str(out),
                  "--metric", "yuv420", "--no-plots", *RATES)
    assert proc.returncode == 0, proc.stderr
    assert {p: p.stat().st_mtime_ns for p in cache} == before
    md = (out / "bd_rate.md").read_text()
    assert f"rgb ({M.YUV420_KEY}) BD-rate" in md and "--metric yuv420" in md
    assert "rgb (psnr-rgb) BD-rate" in default_md
    import json
    res = json.loads((out / "results.json").read_text())
    assert res["metric"] == "yuv420"
    rgb = res["codecs"]["jpeg"]["results"]["rgb"]["results"]
    assert rgb[M.YUV420_KEY] == pytest.approx(rgb["psnr-yuv420"])     # colour images: the 4:2:0 value


def test_bench_report_bad_options(tmp_path):
    data = _write_pairs(tmp_path / "pairs")
    proc = _bench("--data", str(data), "--codecs", "jpeg", "--anchor", "jpeg", "--out", str(tmp_path / "r"),
                  "--report", "--report-pairs", "5")
    assert proc.returncode == 2 and "--report-pairs" in proc.stderr
    proc = _bench("--data", str(data), "--codecs", "vvc", "--anchor", "vvc", "--out", str(tmp_path / "r"),
                  "--rates", "vvc=70")
    assert proc.returncode == 2 and "QP must be an integer" in proc.stderr


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.slow
def test_report_screenshot(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium / chrome on PATH")
    data, out = _write_pairs(tmp_path / "pairs"), tmp_path / "res"
    proc = _bench("--data", str(data), "--codecs", "hevc,jpeg", "--anchor", "hevc", "--out", str(out),
                  "--report", *RATES)
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot.png"
    subprocess.run([exe, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                    "--window-size=1400,2000", (out / "report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.is_file()
    arr = np.asarray(Image.open(shot).convert("L"))
    assert arr.std() > 10                   # not a blank page: images and text rendered
