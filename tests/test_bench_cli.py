"""`mmcodec bench` end to end on tiny synthetic pairs (generated here, never real data)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcodec.cli import build_parser

from conftest import smooth_image

FAST = ["--rates", "jpeg=10,30,60,90", "--rates", "webp=5,30,60,90"]


def _write_pairs(root: Path, kind: str = "ir-vi") -> Path:
    subs = ("vi", "ir") if kind == "ir-vi" else ("rgb", "depth")
    for i, (h, w) in enumerate([(64, 80), (72, 64), (64, 64)]):
        for sub in subs:
            (root / sub).mkdir(parents=True, exist_ok=True)
            if sub in ("vi", "rgb"):
                arr = smooth_image(h, w, 3, seed=i)
            elif sub == "ir":
                arr = smooth_image(h, w, 1, seed=100 + i)
            else:
                arr = smooth_image(h, w, 1, seed=200 + i, dtype=np.uint16) // 20 + 500
            Image.fromarray(arr).save(root / sub / f"p{i}.png")
    return root


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcodec", "bench", *args], capture_output=True,
                          text=True, timeout=300)


def test_smoke_two_classical_codecs(tmp_path):
    data = _write_pairs(tmp_path / "pairs")
    out = tmp_path / "results"
    proc = _bench("--data", str(data), "--codecs", "jpeg,webp", "--anchor", "jpeg", "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "BD-rate" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["pairs"] == 3 and set(res["codecs"]) == {"jpeg", "webp"}
    webp = res["codecs"]["webp"]
    assert webp["settings"]["version"].startswith("imagecodecs")
    for group in ("rgb", "ir", "pair"):
        r = webp["results"][group]
        assert {"name", "description", "results"} <= set(r)
        assert len(r["results"]["bpp"]) == 4
        assert r["results"]["bpp"] == sorted(r["results"]["bpp"])
    assert "psnr-yuv420" in webp["results"]["rgb"]["results"]
    assert res["metrics"]["msssim_windows"] == [3]          # 64 px images: small window, stated
    rows = [r for r in res["per_image"] if r["codec"] == "webp" and r["rate_index"] == 0]
    assert len(rows) == 9                                   # 3 pairs x (rgb, ir, pair)
    one = {r["modality"]: r for r in rows if r["stem"] == "p0"}
    assert one["pair"]["bytes"] == one["rgb"]["bytes"] + one["ir"]["bytes"]
    assert one["pair"]["bpp"] == pytest.approx(8 * one["pair"]["bytes"] / (64 * 80))
    compressai = json.loads((out / "compressai" / "webp-rgb.json").read_text())
    assert set(compressai) == {"name", "description", "results"}
    bdj = json.loads((out / "bd_rate.json").read_text())
    assert set(bdj["tables"]) == {"rgb", "ir", "pair"}
    assert bdj["tables"]["pair"]["psnr"]["webp"]["bd_rate"] is not None
    assert "| webp |" in (out / "bd_rate.md").read_text()
    for g in ("rgb", "ir", "pair"):
        assert (out / f"rd_{g}.png").stat().st_size > 1000

    # A re-run reuses every cached cell: no cache file is rewritten.
    cache = sorted((out / "cache").rglob("*.json"))
    assert len(cache) == 2 * 4 * 3 * 2                     # codecs x rates x pairs x modalities
    before = {p: p.stat().st_mtime_ns for p in cache}
    summary = _run_in_process("--data", str(data), "--codecs", "jpeg,webp", "--anchor", "jpeg",
                              "--out", str(out), "--json", "--no-plots", *FAST)
    assert summary["cells"] == 24
    assert {p: p.stat().st_mtime_ns for p in cache} == before


def test_bad_input_exits_2(tmp_path, capsys):
    from mmcodec.cli import main
    assert main(["bench", "--data", str(tmp_path / "missing"), "--codecs", "jpeg", "--anchor", "jpeg",
                 "--out", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err
    data = _write_pairs(tmp_path / "pairs")
    for extra, message in ((["--codecs", "jpeg,bpg"], "unknown codec"),
                           (["--codecs", "jpeg"], "anchor"),
                           (["--codecs", "jpeg", "--anchor", "jpeg", "--rates", "jpeg=x"], "--rates"),
                           (["--codecs", "jpeg", "--anchor", "jpeg", "--limit", "0"], "--limit")):
        assert main(["bench", "--data", str(data), "--out", str(tmp_path / "o"), *extra]) == 2
        assert message in capsys.readouterr().err


def _run_in_process(*argv: str) -> dict:
    from mmcodec.bench.runner import run
    args = build_parser().parse_args(["bench", *argv])
    return run(args)


def test_rgbd_depth_goes_to_16bit_codecs_only(tmp_path):
    data = _write_pairs(tmp_path / "pairs", "rgb-d")
    out = tmp_path / "res"
    _run_in_process("--data", str(data), "--codecs", "jpeg2000,jpeg", "--anchor", "jpeg2000",
                    "--rates", "jpeg2000=30,40,50", "--rates", "jpeg2000:16bit=50,60,70",
                    "--rates", "jpeg=20,50,90", "--out", str(out), "--no-plots")
    res = json.loads((out / "results.json").read_text())
    assert set(res["codecs"]["jpeg2000"]["results"]) == {"rgb", "depth", "pair"}
    assert set(res["codecs"]["jpeg"]["results"]) == {"rgb"}        # 8-bit only: no depth, no pair
    depth = res["codecs"]["jpeg2000"]["results"]["depth"]["results"]
    assert {"rmse", "mae", "psnr"} <= set(depth) and depth["rate_param"] == [50, 60, 70]
    assert "| jpeg |" in (out / "bd_rate.md").read_text()


def test_mmcodec_model_rows(tmp_path, tiny_env):
    data = _write_pairs(tmp_path / "pairs")
    out = tmp_path / "res"
    summary = _run_in_process("--data", str(data), "--codecs", "jpeg,mmcodec:ir-vi/tiny", "--anchor", "jpeg",
                              "--rates", "jpeg=10,40,80", "--out", str(out), "--limit", "2", "--no-plots")
    assert summary["pairs"] == 2
    res = json.loads((out / "results.json").read_text())
    m = res["codecs"]["mmcodec:ir-vi/tiny"]
    assert m["settings"]["weights"] and len(m["results"]["pair"]["results"]["bpp"]) == 2
    rows = {(r["stem"], r["modality"]): r for r in res["per_image"]
            if r["codec"] == "mmcodec:ir-vi/tiny" and r["rate_index"] == 0}
    # The pair counts the whole .mmc file: more than the two modality streams.
    assert rows[("p0", "pair")]["bytes"] > rows[("p0", "rgb")]["bytes"] + rows[("p0", "ir")]["bytes"]


def test_complexity_of_tiny_model(tmp_path, tiny_env):
    from mmcodec.bench.complexity import measure_in_process
    data = _write_pairs(tmp_path / "pairs")
    c = measure_in_process("ir-vi/tiny", {"rgb": data / "vi" / "p2.png", "ir": data / "ir" / "p2.png"}, runs=2)
    assert c["params"] > 1000 and c["torch_threads"] == 1 and c["runs"] == 2
    assert c["macs_per_pixel"]["forward"] > 0 and c["macs_per_pixel"]["decode"] > 0
    assert c["encode_s_median"] > 0 and c["peak_rss_mb"] >= c["rss_after_load_mb"] > 0


@pytest.mark.slow
def test_complexity_in_fresh_process(tmp_path, tiny_env):
    from mmcodec.bench.complexity import measure_complexity
    data = _write_pairs(tmp_path / "pairs")
    c = measure_complexity("ir-vi/tiny", {"rgb": data / "vi" / "p2.png", "ir": data / "ir" / "p2.png"}, runs=2)
    assert c["params"] > 1000 and c["coding_peak_mb"] >= 0


def test_shared_cache_between_result_folders(tmp_path):
    data = _write_pairs(tmp_path / "pairs")
    cache = tmp_path / "cache"
    common = ["--data", str(data), "--codecs", "jpeg", "--anchor", "jpeg", "--cache", str(cache), "--no-plots",
              "--limit", "1"]
    _run_in_process(*common, "--rates", "jpeg=20,60", "--out", str(tmp_path / "a"))
    first = {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")}
    assert len(first) == 4
    # A second folder with one more rate point codes only that point.
    _run_in_process(*common, "--rates", "jpeg=20,60,90", "--out", str(tmp_path / "b"))
    second = {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")}
    assert len(second) == 6 and all(second[p] == t for p, t in first.items())
    assert not (tmp_path / "a" / "cache").exists()


def test_cells_follow_the_data_content_not_its_mtime_or_place(tmp_path):
    import os
    import shutil
    data = _write_pairs(tmp_path / "pairs")
    cache = tmp_path / "cache"
    common = ["--codecs", "jpeg", "--anchor", "jpeg", "--cache", str(cache), "--no-plots", "--limit", "1",
              "--rates", "jpeg=20,60"]
    _run_in_process("--data", str(data), *common, "--out", str(tmp_path / "a"))
    first = {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")}
    # The same files re-provisioned elsewhere with new mtimes: every cell is reused.
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    for p in moved.rglob("*.png"):
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**12))
    _run_in_process("--data", str(moved), *common, "--out", str(tmp_path / "b"))
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")} == first
    # Changed content is coded again.
    Image.fromarray(smooth_image(64, 80, 3, seed=7)).save(moved / "vi" / "p0.png")
    _run_in_process("--data", str(moved), *common, "--out", str(tmp_path / "c"))
    again = {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")}
    assert any(again[p] != t for p, t in first.items())
