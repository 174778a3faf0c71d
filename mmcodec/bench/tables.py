"""Tabulating the cells: per-codec CompressAI-layout results, BD-rate tables and their markdown."""
from __future__ import annotations

from typing import Any

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.bench.bdrate import MIN_OVERLAP, bd
from mmcodec.bench.cells import CodecUnderTest
from mmcodec.bench.dataset import Pair
from mmcodec.errors import BadInputError

# Distortion metrics tabulated per modality (the first one is the primary, ranked in tables).
BD_METRICS = {"rgb": ["psnr-rgb", "psnr-y", "psnr-yuv420", "ms-ssim-db"],
              "ir": ["psnr", "ms-ssim-db"], "depth": ["psnr", "ms-ssim-db"],
              "pair": ["psnr", "psnr-yuv420", "ms-ssim-db"]}
SUMMARY_KEYS = {"rgb": ["psnr-rgb", "psnr-y", "psnr-u420", "psnr-v420", "psnr-yuv420", "ms-ssim", "ms-ssim-db"],
                "ir": ["psnr", "ms-ssim", "ms-ssim-db"],
                "depth": ["psnr", "rmse", "mae", "ms-ssim", "ms-ssim-db"],
                "pair": ["psnr", "psnr-yuv420", "ms-ssim-db"]}


# -- aggregation ----------------------------------------------------------------------------------
def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if len(vals) == len(values) and vals else None


def metric_lists(metric: str = M.DEFAULT_BENCH_METRIC) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(BD metrics, summary keys) per group for a --metric: its key goes first (the ranked one)."""
    if metric == M.DEFAULT_BENCH_METRIC:
        return BD_METRICS, SUMMARY_KEYS
    if metric != "yuv420":
        raise BadInputError(f"unknown --metric {metric!r}; choose from {', '.join(M.BENCH_METRICS)}")
    first = {"rgb": M.YUV420_KEY, "pair": M.YUV420_KEY}
    bd_lists = {g: ([first[g]] if g in first else []) + v for g, v in BD_METRICS.items()}
    summary = {g: ([first[g]] if g in first else []) + v for g, v in SUMMARY_KEYS.items()}
    return bd_lists, summary


def apply_metric(cells: dict[str, dict[tuple[int, str], dict]], pairs: list[Pair], metric: str) -> None:
    """Add the --metric's value to the rgb and pair rows (in memory: cached cells already hold
    every ingredient, PSNR-RGB and YUV420 PSNR of each decoded image, so the cache needs no key
    for the metric and stays shared between metrics)."""
    if metric == M.DEFAULT_BENCH_METRIC:
        return
    grey = {p.stem: M.is_grey_rgb(p.images["rgb"]) for p in pairs}
    for per_codec in cells.values():
        for (_, stem), cell in per_codec.items():
            if "rgb" not in cell:
                continue
            rgb = dict(cell["rgb"])
            rgb[M.YUV420_KEY] = rgb.get("psnr-rgb") if grey[stem] else rgb.get("psnr-yuv420")
            cell["rgb"] = rgb
            if "pair" in cell:
                vals = [rgb[M.YUV420_KEY]] + [cell[m].get("psnr") for m in cell if m not in ("rgb", "pair")]
                cell["pair"] = {**cell["pair"], M.YUV420_KEY: None if any(v is None for v in vals)
                                else float(np.mean(vals))}


def aggregate(cut: CodecUnderTest, cells: dict[tuple[int, str], dict],
              summary_keys: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """CompressAI-layout result dicts per modality (and "pair") for one codec."""
    summary_keys = summary_keys or SUMMARY_KEYS
    out = {}
    for g in [*cut.modalities, "pair"]:
        res: dict[str, list] = {"rate_index": [], "rate_param": [], "bpp": []}
        for k in summary_keys[g]:
            res[k] = []
        if g != "pair":
            res["encoding_time"], res["decoding_time"] = [], []
        res["images"] = []
        for rate in cut.rates:
            rows = [c[g] for (i, _), c in cells.items() if i == rate.index and g in c]
            if not rows:
                continue
            res["rate_index"].append(rate.index)
            res["rate_param"].append(rate.params.get(g, rate.label) if g != "pair" else rate.label)
            res["bpp"].append(_mean([r["bpp"] for r in rows]))
            for k in summary_keys[g]:
                res[k].append(_mean([r.get(k) for r in rows]))
            if g != "pair":
                res["encoding_time"].append(_mean([r["encode_s"] for r in rows]))
                res["decoding_time"].append(_mean([r["decode_s"] for r in rows]))
            res["images"].append(len(rows))
        if res["bpp"]:
            out[g] = {"name": cut.name, "description": f"{cut.description} [{g}]", "results": res}
    return out


def bd_tables(codec_results: dict[str, dict], anchor: str, method: str,
              bd_metrics: dict[str, list[str]] | None = None) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    anchor_res = codec_results[anchor]
    for g, metric_list in (bd_metrics or BD_METRICS).items():
        if g not in anchor_res:
            continue
        for metric in metric_list:
            a = anchor_res[g]["results"]
            for name, res in codec_results.items():
                if name == anchor or g not in res:
                    continue
                t = res[g]["results"]
                r = bd(a["bpp"], a[metric], t["bpp"], t[metric], method)
                tables.setdefault(g, {}).setdefault(metric, {})[name] = r.to_json()
    return tables


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def bd_markdown(tables: dict[str, Any], codec_results: dict[str, dict], anchor: str, method: str,
                dataset: dict[str, Any], groups: list[str], bd_metrics: dict[str, list[str]] | None = None,
                metric: str = M.DEFAULT_BENCH_METRIC) -> str:
    bd_metrics = bd_metrics or BD_METRICS
    where = dataset.get("split_name") or f"{dataset.get('data')}" + (f" (split {dataset['split']})" if dataset.get("split") else "")
    visible = ("RGB PSNR for the visible image" if metric == M.DEFAULT_BENCH_METRIC else
               "YUV 4:2:0 PSNR (6 Y + U + V) / 8, BT.601 full range, for a colour visible image, plain PSNR "
               "for a grey one")
    lines = [f"BD-rate (%) and BD-PSNR (dB) against **{anchor}**, {method} interpolation, "
             f"{dataset['pairs']} pairs of {where}.",
             "Negative BD-rate = fewer bits than the anchor at equal quality. Pair: bpp = bits of both "
             f"images / pixels of one image, PSNR = mean of the two modalities' PSNR ({visible}).",
             ""]
    if metric != M.DEFAULT_BENCH_METRIC:
        lines[-1:-1] = [f"Metric: --metric {metric} ({M.YUV420_KEY}: the visible image's YUV 4:2:0 PSNR, plain "
                        "PSNR for grey visible images; infrared and depth: PSNR).", ""]
    primary = {g: bd_metrics[g][0] for g in groups}
    head = "| codec | " + " | ".join(f"{g} ({primary[g]}) BD-rate | {g} BD-PSNR" for g in groups) + " |"
    lines += [head, "|---|" + "---:|---:|" * len(groups)]
    notes: list[str] = []
    names = [n for n in codec_results if n != anchor]
    for name in names:
        cells = []
        for g in groups:
            r = tables.get(g, {}).get(primary[g], {}).get(name)
            if r is None:
                cells += ["-", "-"]
                continue
            mark = ""
            if r["warning"]:
                notes.append(f"{name} / {g}: {r['warning']}")
                mark = f" [{len(notes)}]"
            cells += [_num(r["bd_rate"], "+.1f") + mark, _num(r["bd_psnr"], "+.2f")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    extra = [(g, m) for g in groups for m in bd_metrics[g][1:]]
    if extra:
        lines += ["BD-rate (%) on the other quality measures:", "",
                  "| codec | " + " | ".join(f"{g} {m}" for g, m in extra) + " |",
                  "|---|" + "---:|" * len(extra)]
        for name in names:
            vals = []
            for g, m in extra:
                r = tables.get(g, {}).get(m, {}).get(name)
                vals.append("-" if r is None else _num(r["bd_rate"], "+.1f") + (" *" if r["warning"] else ""))
            lines.append(f"| {name} | " + " | ".join(vals) + " |")
        lines.append("")
    lines += ["Rate range covered (mean bpp, lowest..highest rate point):", "",
              "| codec | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for name, res in codec_results.items():
        vals = []
        for g in groups:
            b = res.get(g, {}).get("results", {}).get("bpp")
            vals.append(f"{min(b):.3f}..{max(b):.3f}" if b else "-")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    if notes:
        lines += ["", f"Warnings (overlap below {100 * MIN_OVERLAP:.0f}% of the union range, or none):", ""]
        lines += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    return "\n".join(lines) + "\n"
