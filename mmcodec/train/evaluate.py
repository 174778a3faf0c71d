"""The training ledger: BD-rates of evaluated curves, anchor curves from a benchmark, and
the ledger file. The evaluation itself (real bitstreams) is the benchmark's:
mmcodec.bench.learned.evaluate_codec."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any


def with_pair(rows: list[dict[str, Any]], modalities) -> list[dict[str, Any]]:
    """Add the pair point: bpp = all bits of the pair over one image's pixels, PSNR = mean of
    the modalities' PSNR (the CCEM paper's convention)."""
    return [{**r, "bpp_pair": r.get("pair_bpp", sum(r[f"bpp_{m}"] for m in modalities)),
             "psnr_pair": sum(r[f"psnr_{m}"] for m in modalities) / len(modalities)} for r in rows]


def bd_rates(rows: list[dict[str, Any]], anchor_rows: list[dict[str, Any]], modalities,
             pair: bool = False) -> dict[str, float | None]:
    """BD-rate (%) of `rows` against `anchor_rows` per modality (negative = fewer bits);
    with pair=True also for the pair."""
    from mmcodec.bench.bdrate import bd
    out = {}
    if pair:
        rows, anchor_rows = with_pair(rows, modalities), with_pair(anchor_rows, modalities)
        modalities = [*modalities, "pair"]
    for m in modalities:
        r = bd([a[f"bpp_{m}"] for a in anchor_rows], [a[f"psnr_{m}"] for a in anchor_rows],
               [t[f"bpp_{m}"] for t in rows], [t[f"psnr_{m}"] for t in rows])
        out[m] = None if r.bd_rate is None else round(r.bd_rate, 2)
    return out


def anchor_rows_from_results(path: Path, codec: str, modalities) -> list[dict[str, Any]] | None:
    """A classical codec's curve (e.g. "hevc") from a `mmcodec bench` output folder (its
    CompressAI-style `compressai/<codec>-<modality>.json` files) or its results.json."""
    per_mod: dict[str, dict[str, list[float]]] = {}
    if path.is_dir():
        for m in modalities:
            f = path / "compressai" / f"{codec}-{m}.json"
            if not f.is_file():
                return None
            per_mod[m] = json.loads(f.read_text())["results"]
    elif path.is_file():
        entry = json.loads(path.read_text()).get("codecs", {}).get(codec)
        if entry is None or not all(m in entry["results"] for m in modalities):
            return None
        per_mod = {m: entry["results"][m]["results"] if "results" in entry["results"][m] else entry["results"][m]
                   for m in modalities}
    else:
        return None
    n = min(len(r["bpp"]) for r in per_mod.values())
    return [{**{f"bpp_{m}": per_mod[m]["bpp"][i] for m in modalities},
             **{f"psnr_{m}": per_mod[m].get(f"psnr-{m}", per_mod[m].get("psnr"))[i] for m in modalities}}
            for i in range(n)]


def append_ledger(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **entry}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
