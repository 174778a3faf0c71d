"""`mmcodec bench`: code every pair at every rate point of every codec, then tabulate.

The pairs come from bench.dataset, the codecs under test and their cached cells from
bench.cells, the aggregated results and BD-rate tables from bench.tables; this module holds
the command's arguments, the run itself and the files it writes.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.bench.bdrate import MIN_OVERLAP
from mmcodec.bench.cells import (classical_cell, iterate_cells, make_codecs, mmcodec_cell, parse_overrides,
                                 safe_name)
from mmcodec.bench.classical import CODECS
from mmcodec.bench.dataset import load_dataset
from mmcodec.bench.tables import aggregate, apply_metric, bd_markdown, bd_tables, metric_lists
from mmcodec.errors import BadInputError, MMCodecError
from mmcodec.files import atomic_write

DEFAULT_CODECS = "hevc,avif,jpegxl,jpeg2000,webp,jpeg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="folder with vi/+ir/ or rgb/+depth/, or a named split (e.g. roadscene-test)")
    p.add_argument("--split", help="file listing the stems to use (with a folder)")
    p.add_argument("--codecs", default=DEFAULT_CODECS,
                   help=f"comma-separated: {', '.join(CODECS)}, mmcodec:<model> (default: {DEFAULT_CODECS})")
    p.add_argument("--out", required=True, help="results directory (cells are cached in OUT/cache)")
    p.add_argument("--cache", help="cell cache directory (default OUT/cache); share it between result folders")
    p.add_argument("--limit", type=int, help="use only the first N pairs (quick runs)")
    p.add_argument("--anchor", default="hevc", help="codec the BD-rates are measured against (default hevc)")
    p.add_argument("--bd-method", choices=["pchip", "akima"], default="pchip", help="BD interpolation")
    p.add_argument("--rates", action="append", default=[], metavar="CODEC[:16bit]=V1,V2,...",
                   help="override a classical codec's rate ladder (8-bit images, or :16bit ones)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for mmcodec models (default 1)")
    p.add_argument("--complexity", action="store_true",
                   help="also measure params, MACs/pixel, coding time and peak memory of mmcodec models")
    p.add_argument("--complexity-runs", type=int, default=5, help="timed runs per measurement (median)")
    p.add_argument("--no-plots", action="store_true", help="skip the rd_<modality>.png figures")
    p.add_argument("--metric", choices=list(M.BENCH_METRICS), default=M.DEFAULT_BENCH_METRIC,
                   help="distortion the visible images (and pairs) are ranked by: rgb = RGB PSNR (default); "
                        "yuv420 = (6 PSNR_Y + PSNR_U + PSNR_V) / 8 in BT.601 YUV 4:2:0 (CCEM protocol), "
                        "plain PSNR for grey visible images; infrared and depth always use PSNR")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html: originals and each codec's reconstruction (with an "
                        "enlarged centre crop) at a common bpp for a few pairs, RD plots and the BD table")
    p.add_argument("--report-pairs", type=int, default=3, help="pairs shown in the report (default 3, at most 3)")
    p.add_argument("--video", action="store_true",
                   help="video mode (issue 25): --data holds <sequence>/vi + <sequence>/ir frame folders; codecs "
                        "x265, vvc, intra, and video models by name (default: all); see mmcodec.bench.video")
    p.add_argument("--frames", type=int, default=8, help="video mode: frames per sequence (default 8)")
    p.add_argument("--gop", type=int, default=8, help="video mode: GOP of every codec (default 8)")
    p.add_argument("--sequences", nargs="*", help="video mode: only these sequences (default: every one)")
    p.add_argument("--report-bpp", type=float,
                   help="target bpp of the report's reconstructions (default: per modality, the geometric "
                        "middle of the bpp range every codec covers)")


# -- environment --------------------------------------------------------------------------------
def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "logical_cpus": os.cpu_count(),
            "system": platform.platform(), "python": platform.python_version(), "torch_threads": threads}


def library_versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {}
    for dist in ("mmcodec", "numpy", "torch", "compressai", "imagecodecs", "pillow-heif", "pillow",
                 "bjontegaard", "pytorch-msssim", "scipy", "matplotlib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import pillow_heif
        info = pillow_heif.libheif_info()
        out["libheif"] = str(info.get("libheif"))
        out["x265"] = str(info.get("HEIF"))
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    try:
        import imagecodecs
        out["imagecodecs_libraries"] = imagecodecs.version()
    except Exception:  # noqa: BLE001
        pass
    return out


METRIC_NOTES = {
    "bpp": "from the real encoded bytes / pixels of one image; classical: codec file (HEIF boxes included) "
           "+ 4 bytes of value range for 16-bit input; mmcodec modality: its entropy-coded streams; "
           "pair: all bits of the pair (mmcodec: the whole .mmc file)",
    "psnr-rgb": "PSNR over R, G, B, peak 255",
    "psnr-y / psnr-yuv420": "BT.601 full-range YCbCr (float, unrounded), chroma 2x2 box-averaged to 4:2:0; "
                            "psnr-yuv420 = (6 PSNR_Y + PSNR_U + PSNR_V) / 8",
    "psnr (ir)": "single-channel PSNR, peak 255 (65535 for 16-bit)",
    "psnr (depth)": "PSNR on raw depth values with peak 65535 (255 for 8-bit depth); rmse and mae in input units",
    "ms-ssim": "pytorch-msssim, 5 scales, 11-tap Gaussian window; images with short side <= 160 px use a "
               "smaller odd window ((win-1)*16 < short side), see msssim_windows; data range 255 for "
               "RGB/IR, the reference's own max-min for depth; ms-ssim-db = -10 log10(1 - MS-SSIM)",
    "pair": "bpp = total bits / pixels of one image; psnr = mean(RGB PSNR, IR/depth PSNR); "
            "psnr-yuv420 = mean(visible YUV420 PSNR, IR/depth PSNR); ms-ssim-db = mean of both",
    "averaging": "every value is the mean over images of the per-image value (CompressAI convention)",
    "psnr_cap": f"identical images are reported as {M.PSNR_CAP:g} dB",
}


# -- entry point ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm
    import torch
    torch.set_num_threads(max(1, args.threads))
    pairs, kind, dataset = load_dataset(args.data, args.split, args.limit)
    cuts = make_codecs(args.codecs, pairs, kind, parse_overrides(args.rates), args.threads)
    names = [c.name for c in cuts]
    if args.complexity and not any(c.mmcodec is not None for c in cuts):
        raise BadInputError("--complexity measures mmcodec models: add mmcodec:<model> to --codecs")
    if getattr(args, "report", False) and not 1 <= args.report_pairs <= 3:
        raise BadInputError(f"--report-pairs must be 1..3, got {args.report_pairs}")
    if getattr(args, "report_bpp", None) is not None and not (args.report_bpp > 0 and math.isfinite(args.report_bpp)):
        raise BadInputError(f"--report-bpp must be a positive number, got {args.report_bpp}")
    if args.anchor not in names:
        raise BadInputError(f"anchor {args.anchor!r} is not among --codecs ({', '.join(names)})")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out must be a directory: {out}")
    cache = Path(args.cache) if args.cache else out / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create {cache}: {exc.strerror or exc}") from None

    cells: dict[str, dict[tuple[int, str], dict]] = {c.name: {} for c in cuts}
    total = sum(len(c.rates) for c in cuts) * len(pairs)
    started = time.perf_counter()
    bar = tqdm(iterate_cells(cuts, pairs), total=total, unit="cell", desc="bench",
               disable=getattr(args, "json", False), file=sys.stderr,
               mininterval=0.1 if sys.stderr.isatty() else 10.0)
    for cut, rate, pair in bar:
        bar.set_postfix_str(f"{cut.name} {rate.label} {pair.stem}", refresh=False)
        try:
            fn = mmcodec_cell if cut.mmcodec is not None else classical_cell
            cells[cut.name][(rate.index, pair.stem)] = fn(cache, cut, rate, pair)
        except MMCodecError:
            raise
        except Exception as exc:
            raise RuntimeError(f"{cut.name} at {rate.label} on {pair.stem}: {exc}") from exc
    elapsed = time.perf_counter() - started

    metric = getattr(args, "metric", M.DEFAULT_BENCH_METRIC)
    bd_lists, summary_keys = metric_lists(metric)
    apply_metric(cells, pairs, metric)
    codec_results = {c.name: aggregate(c, cells[c.name], summary_keys) for c in cuts}
    groups = [*dataset["modalities"], "pair"]
    tables = bd_tables(codec_results, args.anchor, args.bd_method, bd_lists)
    windows = sorted({r.get("msssim_win") for cs in cells.values() for c in cs.values()
                      for g, r in c.items() if g != "pair"}, key=lambda w: (w is None, w))

    per_image = []
    for cut in cuts:
        for (idx, stem), c in sorted(cells[cut.name].items()):
            rate = cut.rates[[r.index for r in cut.rates].index(idx)]
            for g, row in c.items():
                per_image.append({"codec": cut.name, "rate_index": idx, "rate": rate.label,
                                  "param": rate.params.get(g), "stem": stem, "modality": g, **row})

    results = {
        "format": "mmcodec-bench/1",
        "note": "codecs[name].results[modality] has CompressAI's result layout; the same dicts are "
                "written one per file under compressai/ for CompressAI's plot tool",
        "dataset": dataset, "anchor": args.anchor, "bd_method": args.bd_method,
        **({"metric": metric} if metric != M.DEFAULT_BENCH_METRIC else {}),
        "machine": machine_info(args.threads), "versions": library_versions(),
        "metrics": {**METRIC_NOTES, "msssim_windows": windows},
        "codecs": {c.name: {"name": c.name, "description": c.description, "settings": c.settings,
                            "modalities": c.modalities,
                            "rate_points": [{"index": r.index, "label": r.label, "params": r.params} for r in c.rates],
                            "results": codec_results[c.name]} for c in cuts},
        "timing": {"wall_seconds_this_run": round(elapsed, 2), "cells": total},
        "per_image": per_image,
    }
    if args.complexity:
        from mmcodec.bench.complexity import measure_complexity
        results["complexity"] = {
            c.name: measure_complexity(c.mmcodec.installed.name, pairs[0].paths, threads=args.threads,
                                       runs=args.complexity_runs)
            for c in cuts if c.mmcodec is not None}

    _write_json(out / "results.json", results)
    comp = out / "compressai"
    comp.mkdir(exist_ok=True)
    for name, per_group in codec_results.items():
        for g, d in per_group.items():
            _write_json(comp / f"{safe_name(name)}-{g}.json", d)
    _write_json(out / "bd_rate.json", {"anchor": args.anchor, "method": args.bd_method,
                                       **({"metric": metric} if metric != M.DEFAULT_BENCH_METRIC else {}),
                                       "min_overlap_warning": MIN_OVERLAP, "dataset": dataset, "tables": tables})
    md = bd_markdown(tables, codec_results, args.anchor, args.bd_method, dataset, groups, bd_lists, metric)
    if any(w != M.DEFAULT_WIN for w in windows):
        md += (f"\nMS-SSIM window sizes used: {', '.join(str(w) for w in windows)} (11 is the standard; "
               "smaller windows for images with a short side of 160 px or less, None = too small to measure).\n")
    (out / "bd_rate.md").write_text(md)
    plots = []
    if not args.no_plots:
        from mmcodec.bench.plots import plot_rd
        with _plot_metric(bd_lists):
            for g in groups:
                p = out / f"rd_{g}.png"
                if plot_rd(codec_results, g, p, title=f"{dataset.get('split_name') or Path(str(dataset.get('data'))).name} "
                                                     f"({dataset['pairs']} pairs): {g}"):
                    plots.append(str(p))
    warn = [f"{n} / {g} / {m}: {r['warning']}" for g, t in tables.items() for m, rs in t.items()
            for n, r in rs.items() if r["warning"] and m == bd_lists[g][0]]
    summary = {"out": str(out), "pairs": len(pairs), "codecs": names, "cells": total,
               "seconds": round(elapsed, 1), "bd_rate_md": str(out / "bd_rate.md"), "plots": plots,
               "warnings": warn, "table": md}
    if getattr(args, "report", False):
        from mmcodec.bench.report import write_report
        summary["report"] = str(write_report(
            out, cuts, pairs, cells, codec_results, md, [Path(p) for p in plots], anchor=args.anchor,
            primary={g: bd_lists[g][0] for g in groups}, target_bpp=args.report_bpp, n_pairs=args.report_pairs))
    return summary


@contextlib.contextmanager
def _plot_metric(bd_lists: dict[str, list[str]]) -> Iterator[None]:
    """Let plot_rd draw the --metric's curve: it reads the module's PRIMARY_METRIC and _YLABEL."""
    from mmcodec.bench import plots
    saved = plots.PRIMARY_METRIC, plots._YLABEL
    plots.PRIMARY_METRIC = {**saved[0], **{g: v[0] for g, v in bd_lists.items()}}
    plots._YLABEL = {**saved[1], M.YUV420_KEY: "YUV 4:2:0 PSNR, (6Y+U+V)/8 (dB)"}
    try:
        yield
    finally:
        plots.PRIMARY_METRIC, plots._YLABEL = saved


def _write_json(path: Path, obj: Any) -> None:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o
    atomic_write(path, (json.dumps(clean(obj), indent=1, allow_nan=False) + "\n").encode())


def run_from_args(args: argparse.Namespace) -> int:
    if getattr(args, "video", False):
        from mmcodec.bench.video import run_from_args as run_video_from_args
        return run_video_from_args(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = run(args)
    if getattr(args, "json", False):
        print(json.dumps({k: v for k, v in summary.items() if k != "table"}))
    else:
        print(summary["table"])
        for w in summary["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
        if summary.get("report"):
            print(f"report: {summary['report']}")
        print(f"{summary['cells']} cells ({summary['pairs']} pairs) in {summary['seconds']} s; "
              f"results in {summary['out']}")
    return 0
