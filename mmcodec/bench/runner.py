"""`mmcodec bench`: code every pair at every rate point of every codec, then tabulate.

Work is split into cells cached on disk under RESULTS_DIR/cache/, so an interrupted or
extended run (more images, more codecs, more rate points) only codes what is missing:
- classical codecs: one cell per (codec, modality, rate parameter, image); the modalities of
  a pair are coded independently, with the same rate index for both;
- mmcodec models: one cell per (model, weights hash, quality, pair), since the pair is coded
  jointly into one .mmc file.
A cell is reused only when its fingerprint (codec settings and versions, rate parameter,
source file size and mtime) matches.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.bench.bdrate import MIN_OVERLAP, bd
from mmcodec.bench.classical import CODECS, ClassicalCodec, get_codec
from mmcodec.errors import BadInputError, MMCodecError
from mmcodec.files import atomic_write

DEFAULT_CODECS = "hevc,avif,jpegxl,jpeg2000,webp,jpeg"
CACHE_VERSION = 2   # 2: pairs are identified by content (1: path, size, mtime)
# Distortion metrics tabulated per modality (the first one is the primary, ranked in tables).
BD_METRICS = {"rgb": ["psnr-rgb", "psnr-y", "psnr-yuv420", "ms-ssim-db"],
              "ir": ["psnr", "ms-ssim-db"], "depth": ["psnr", "ms-ssim-db"],
              "pair": ["psnr", "psnr-yuv420", "ms-ssim-db"]}
SUMMARY_KEYS = {"rgb": ["psnr-rgb", "psnr-y", "psnr-u420", "psnr-v420", "psnr-yuv420", "ms-ssim", "ms-ssim-db"],
                "ir": ["psnr", "ms-ssim", "ms-ssim-db"],
                "depth": ["psnr", "rmse", "mae", "ms-ssim", "ms-ssim-db"],
                "pair": ["psnr", "psnr-yuv420", "ms-ssim-db"]}


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
    p.add_argument("--report-bpp", type=float,
                   help="target bpp of the report's reconstructions (default: per modality, the geometric "
                        "middle of the bpp range every codec covers)")


# -- dataset ------------------------------------------------------------------------------------
@dataclass
class Pair:
    stem: str
    paths: dict[str, Path]
    images: dict[str, np.ndarray]     # integer arrays; rgb always (H, W, 3), others (H, W)

    @property
    def pixels(self) -> int:
        a = next(iter(self.images.values()))
        return int(a.shape[0] * a.shape[1])

    def source_id(self) -> list:
        # The files' content, not their path or mtime: a re-provisioned or moved copy of the
        # same data keeps its cached cells (an mtime key once threw away a whole study's cells).
        return [[m, _content_digest(p)] for m, p in sorted(self.paths.items())]


def _content_digest(path: Path) -> str:
    st = path.stat()
    return _digest_file(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _digest_file(path: str, _size: int, _mtime_ns: int) -> str:
    """Content hash; size and mtime only decide when to hash the file again."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]


def _load_reference(modality: str, path: Path) -> np.ndarray:
    from mmcodec.data.images import read_image
    arr = read_image(path)
    if modality == "rgb":
        if arr.dtype != np.uint8:
            raise BadInputError(f"visible image must be 8-bit: {path}")
        return M.as_rgb(arr)
    if arr.ndim == 3:
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise BadInputError(f"{modality} image must have one channel: {path}")
        arr = np.ascontiguousarray(arr[..., 0])
    return arr


def load_dataset(data: str, split: str | None, limit: int | None) -> tuple[list[Pair], str, dict[str, Any]]:
    from mmcodec.data.pairs import LAYOUTS, SPLITS, find_pairs, standard_split
    if data in SPLITS and not Path(data).exists():
        if split:
            raise BadInputError(f"--split cannot be combined with the named split {data!r}")
        records = standard_split(data)
        desc = {"split_name": data}
    else:
        records = find_pairs(data, split)
        desc = {"data": str(Path(data).resolve()), "split": str(Path(split).resolve()) if split else None}
    if limit is not None:
        if limit < 1:
            raise BadInputError(f"--limit must be at least 1, got {limit}")
        records = records[:limit]
    kind = records[0].kind
    if any(r.kind != kind for r in records):
        raise BadInputError("the dataset mixes visible+infrared and RGB+depth pairs")
    pairs = []
    for r in records:
        images = {m: _load_reference(m, r.paths[m]) for m in LAYOUTS[kind]}
        shapes = {m: a.shape[:2] for m, a in images.items()}
        if len(set(shapes.values())) != 1:
            raise BadInputError(f"pair {r.stem}: modality sizes differ {shapes}")
        pairs.append(Pair(r.stem, dict(r.paths), images))
    sizes = sorted({p.images["rgb"].shape[:2] for p in pairs})
    desc.update({"kind": kind, "pairs": len(pairs), "stems": [p.stem for p in pairs],
                 "modalities": list(LAYOUTS[kind]),
                 "image_sizes_hw": [list(s) for s in sizes[:5]] + (["..."] if len(sizes) > 5 else []),
                 "bit_depths": {m: sorted({8 if p.images[m].dtype == np.uint8 else 16 for p in pairs})
                                for m in LAYOUTS[kind]}})
    return pairs, kind, desc


# -- codecs under test ----------------------------------------------------------------------------
@dataclass
class RatePoint:
    index: int
    label: str
    params: dict[str, float]       # modality -> codec parameter (classical) / quality (mmcodec)


@dataclass
class CodecUnderTest:
    name: str
    description: str
    settings: dict[str, Any]
    modalities: list[str]          # modalities this codec codes on this dataset
    rates: list[RatePoint]
    classical: ClassicalCodec | None = None
    mmcodec: Any = None            # mmcodec.codec.Codec
    extra: dict[str, Any] = field(default_factory=dict)


def _parse_overrides(items: list[str]) -> dict[tuple[str, str], list[float]]:
    out = {}
    for item in items:
        try:
            key, values = item.split("=", 1)
            name, _, depth = key.partition(":")
            depth = depth or "8bit"
            if depth not in ("8bit", "16bit"):
                raise ValueError
            vals = [float(v) for v in values.split(",") if v.strip()]
            if not vals:
                raise ValueError
        except ValueError:
            raise BadInputError(f"--rates expects CODEC[:16bit]=V1,V2,..., got {item!r}") from None
        get_codec(name)
        out[(name, depth)] = vals
    return out


def _fmt(v: float) -> str:
    return f"{v:g}"


def make_codecs(spec: str, pairs: list[Pair], kind: str, overrides: dict, threads: int) -> list[CodecUnderTest]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise BadInputError("--codecs is empty")
    if len(set(names)) != len(names):
        raise BadInputError(f"--codecs lists a codec twice: {spec}")
    mods = list(pairs[0].images)
    out = []
    for name in names:
        if name.startswith("mmcodec:"):
            out.append(_mmcodec_under_test(name, kind, mods, threads))
            continue
        base = get_codec(name)
        ladders = dict(base.ladders)
        for (n, depth), vals in overrides.items():
            if n == name:
                ladders[depth] = vals
        codec = ClassicalCodec(**{**base.__dict__, "ladders": ladders})
        usable = [m for m in mods if all(codec.supports(p.images[m]) for p in pairs)]
        if "rgb" not in usable:
            raise BadInputError(f"{name} cannot code the visible images")
        per_mod = {m: codec.ladder(pairs[0].images[m]) for m in usable}
        n_rates = min(len(v) for v in per_mod.values())
        rates = [RatePoint(i, "/".join(_fmt(per_mod[m][i]) for m in usable), {m: per_mod[m][i] for m in usable})
                 for i in range(n_rates)]
        out.append(CodecUnderTest(name, codec.description, codec.settings(), usable, rates, classical=codec))
    return out


def _mmcodec_under_test(name: str, kind: str, mods: list[str], threads: int) -> CodecUnderTest:
    import torch
    import mmcodec
    torch.set_num_threads(threads)
    from mmcodec.refine import check_effort
    model, _, option = name.split(":", 1)[1].partition("@")
    if not model:
        raise BadInputError("mmcodec:<model> needs a model name (see `mmcodec models`)")
    effort = 0    # a plain mmcodec:<model> is the unrefined encoder, as in every earlier table
    if option:
        key, _, value = option.partition("=")
        if key != "effort" or not value.isdigit():
            raise BadInputError(f"{name}: expected mmcodec:<model>@effort=E, E in 0..3")
        effort = check_effort(int(value))
    codec = mmcodec.load(model, pair=kind)
    if effort:
        codec.resolve_effort(effort)
        from mmcodec.refine import supports_refinement
        if not supports_refinement(codec.model):
            raise BadInputError(f"model {model} has no encoder refinement; use effort 0")
    if set(codec.modalities) != set(mods):
        raise BadInputError(f"model {model} codes {'+'.join(codec.modalities)} pairs, the dataset is {kind}")
    inst = codec.installed
    rates = [RatePoint(q - 1, f"q{q}", {m: q for m in mods}) for q in inst.qualities]
    settings = {"model": inst.name, "arch": inst.arch, "weights": inst.weights_hash, "kwargs": inst.kwargs,
                "lambdas": inst.lambdas, "qualities": inst.qualities, "torch_threads": threads, "effort": effort,
                "bytes": "pair: whole .mmc file (header, side info, CRC); modality: its entropy-coded streams"}
    return CodecUnderTest(name, inst.description or f"mmcodec {inst.arch}", settings, list(mods), rates,
                          mmcodec=codec)


# -- cells ----------------------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _read_cell(path: Path, fingerprint: str) -> dict | None:
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cell if cell.get("fingerprint") == fingerprint else None


def _write_cell(path: Path, cell: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(cell).encode())


def _modality_row(modality: str, ref: np.ndarray, decoded: np.ndarray, nbytes: int, pixels: int,
                  encode_s: float, decode_s: float) -> dict[str, Any]:
    row = {"bytes": int(nbytes), "bpp": 8.0 * nbytes / pixels, "encode_s": encode_s, "decode_s": decode_s}
    row.update(M.modality_metrics(modality, ref, decoded))
    return row


def classical_cell(cache: Path, cut: CodecUnderTest, rate: RatePoint, pair: Pair) -> dict[str, Any]:
    """Both modalities of one pair at one rate index (each from its own cached cell)."""
    codec = cut.classical
    rows = {}
    for m in cut.modalities:
        param = rate.params[m]
        # The ladder is left out so that editing it keeps the cells of unchanged rate points.
        coding = {k: v for k, v in cut.settings.items() if k != "ladders"}
        fp = _digest([CACHE_VERSION, cut.name, coding, m, param, pair.source_id()])
        path = cache / _safe(cut.name) / m / _fmt(param) / f"{_safe(pair.stem)}.json"
        cell = _read_cell(path, fp)
        if cell is None:
            coded = codec.code(pair.images[m], param)
            row = _modality_row(m, pair.images[m], coded.decoded, coded.nbytes, pair.pixels,
                                coded.encode_s, coded.decode_s)
            cell = {"fingerprint": fp, "codec": cut.name, "modality": m, "param": param,
                    "stem": pair.stem, "row": row}
            _write_cell(path, cell)
        rows[m] = cell["row"]
    return _with_pair(rows, sum(r["bytes"] for r in rows.values()), pair)


def mmcodec_cell(cache: Path, cut: CodecUnderTest, rate: RatePoint, pair: Pair) -> dict[str, Any]:
    from mmcodec.bench.learned import code_pair
    from mmcodec.data.images import load_modality
    codec = cut.mmcodec
    quality = int(next(iter(rate.params.values())))
    key = [CACHE_VERSION, cut.name, codec.installed.weights_hash, quality, pair.source_id()]
    if cut.settings.get("effort"):   # a refined cell also depends on the level's iterations
        from mmcodec.refine import EFFORT_ITERATIONS, LEARNING_RATE
        key += [EFFORT_ITERATIONS[cut.settings["effort"]], LEARNING_RATE]
    fp = _digest(key)
    path = cache / _safe(cut.name) / cut.settings["weights"] / f"q{quality}" / f"{_safe(pair.stem)}.json"
    cell = _read_cell(path, fp)
    if cell is None:
        images = {m: load_modality(m, pair.paths[m]) for m in cut.modalities}
        coded = code_pair(codec, images, quality, cut.settings.get("effort", 0), references=pair.images)
        cell = {"fingerprint": fp, "codec": cut.name, "quality": quality, "stem": pair.stem,
                "rows": coded["rows"], "file_bytes": coded["file_bytes"]}
        _write_cell(path, cell)
    return _with_pair(cell["rows"], cell["file_bytes"], pair)


def _with_pair(rows: dict[str, dict], total_bytes: int, pair: Pair) -> dict[str, Any]:
    out = dict(rows)
    if set(rows) == set(pair.images):   # a pair result needs both modalities
        out["pair"] = {"bytes": int(total_bytes), "bpp": 8.0 * total_bytes / pair.pixels,
                       **M.pair_metrics(rows)}
    return out


def iterate_cells(cuts: list[CodecUnderTest], pairs: list[Pair]) -> Iterator[tuple[CodecUnderTest, RatePoint, Pair]]:
    for cut in cuts:
        for rate in cut.rates:
            for pair in pairs:
                yield cut, rate, pair


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
    cuts = make_codecs(args.codecs, pairs, kind, _parse_overrides(args.rates), args.threads)
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
            _write_json(comp / f"{_safe(name)}-{g}.json", d)
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
