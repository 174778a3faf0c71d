"""Codecs under test and their cells: one coded image or pair, cached on disk by fingerprint.

Work is split into cells cached on disk under RESULTS_DIR/cache/, so an interrupted or
extended run (more images, more codecs, more rate points) only codes what is missing:
- classical codecs: one cell per (codec, modality, rate parameter, image); the modalities of
  a pair are coded independently, with the same rate index for both;
- mmcodec models: one cell per (model, weights hash, quality, pair), since the pair is coded
  jointly into one .mmc file.
A cell is reused only when its fingerprint (codec settings and versions, rate parameter,
and the content of the source files) matches.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.bench.classical import ClassicalCodec, get_codec
from mmcodec.bench.dataset import Pair
from mmcodec.errors import BadInputError
from mmcodec.files import atomic_write

CACHE_VERSION = 2   # 2: pairs are identified by content (1: path, size, mtime)


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


def parse_overrides(items: list[str]) -> dict[tuple[str, str], list[float]]:
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


def safe_name(name: str) -> str:
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
        path = cache / safe_name(cut.name) / m / _fmt(param) / f"{safe_name(pair.stem)}.json"
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
    if cut.settings.get("effort"):   # a refined cell also depends on the level's schedule
        from mmcodec.refine import EFFORT_LEVELS
        level = EFFORT_LEVELS[cut.settings["effort"]]
        key += [level.iterations, level.lr, level.lr_final_fraction]
    if codec.routes_grey_visible:   # cells coded before the route existed hold other files
        key.append("grey-via-ir")
    fp = _digest(key)
    path = cache / safe_name(cut.name) / cut.settings["weights"] / f"q{quality}" / f"{safe_name(pair.stem)}.json"
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
