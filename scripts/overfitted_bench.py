"""Issue 26 measurement: the overfitted codec on real pairs, per modality, at a few budgets.

Run (one thread, resumable: cells already in the JSON are skipped):
  OMP_NUM_THREADS=1 .venv/bin/python scripts/overfitted_bench.py code --split roadscene-test --pairs 2 \
      --lambdas 0.002,0.006,0.02,0.06 --iters 150,400 --out results/overfitted/roadscene-test.json
Then the table (needs `mmcodec bench` results for the same pairs with hevc and mmcodec:ir-vi/separate):
  .venv/bin/python scripts/overfitted_bench.py table results/overfitted/roadscene-test.json \
      --anchors results/overfitted/anchors-roadscene-test/results.json

Per pair and (iterations, lambda): the visible image (RGB, unconditioned), the infrared image
unconditioned, and the infrared image conditioned on the decoded visible image, each fitted with
the same iteration count (so the conditioned IR has the same encode budget as its unconditioned
twin; it costs slightly more per iteration for the extra input channel, reported). bpp from the
stream bytes; decode timed in process from the stream (a test checks fresh-process exactness).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def code(args: argparse.Namespace) -> None:
    from mmcodec.bench.dataset import load_dataset
    from mmcodec.overfitted import OverfitConfig, decode, fit_and_encode
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = json.loads(out.read_text()) if out.exists() else {"split": args.split, "cells": []}
    done = {(c["stem"], c["iters"], c["lam"], c["variant"]) for c in res["cells"]}
    pairs, _, _ = load_dataset(args.split, None, args.pairs)
    lams = [float(v) for v in args.lambdas.split(",")]
    for iters in [int(v) for v in args.iters.split(",")]:
        for p in pairs:
            for lam in lams:
                vis, ir = p.images["rgb"], p.images["ir"]
                pix = vis.shape[0] * vis.shape[1]
                vis_dec = None
                for variant in ("rgb", "ir", "ir|rgb"):
                    key = (p.stem, iters, lam, variant)
                    if key in done and variant != "rgb":
                        continue
                    img = vis if variant == "rgb" else ir
                    cond = None
                    if variant == "ir|rgb":
                        cond = vis_dec
                    cfg = OverfitConfig(levels=args.levels, out_channels=3 if variant == "rgb" else 1,
                                        cond_channels=1 if cond is not None else 0)
                    if key in done:     # visible already coded: recompute its decode (needed as condition)
                        cell = next(c for c in res["cells"] if (c["stem"], c["iters"], c["lam"], c["variant"]) == key)
                        if all((p.stem, iters, lam, v) in done for v in ("ir", "ir|rgb")):
                            break
                        vis_dec = decode(bytes.fromhex(cell["stream_hex"]))
                        continue
                    enc = fit_and_encode(img, lam, iters, cfg, cond_image=cond, lr=args.lr)
                    t0 = time.perf_counter()
                    dec = decode(enc.stream, cond)
                    dec_s = time.perf_counter() - t0
                    if not np.array_equal(dec, enc.recon):
                        raise RuntimeError(f"{key}: decode differs from the encoder's reconstruction")
                    if variant == "rgb":
                        vis_dec = dec
                    cell = {"stem": p.stem, "iters": iters, "lam": lam, "variant": variant, "bytes": len(enc.stream),
                            "bpp": 8 * len(enc.stream) / pix, "psnr": _psnr(dec, img), "fit_s": enc.fit_s,
                            "encode_s": enc.encode_s, "decode_s": dec_s, "q": enc.q, "config": cfg.asdict()}
                    if variant == "rgb":
                        cell["stream_hex"] = enc.stream.hex()
                    res["cells"].append(cell)
                    done.add(key)
                    print(json.dumps({k: v for k, v in cell.items() if k not in ("stream_hex", "config")}), flush=True)
                    tmp = out.with_suffix(".tmp")
                    tmp.write_text(json.dumps(res))
                    os.replace(tmp, out)


def _curve(cells: list[dict], variant: str, iters: int, stems: list[str]) -> tuple[list[float], list[float]]:
    """Mean bpp / PSNR over the pairs at each lambda (the bench's aggregation)."""
    rates, quals = [], []
    for lam in sorted({c["lam"] for c in cells}):
        row = [c for c in cells if c["variant"] == variant and c["iters"] == iters and c["lam"] == lam
               and c["stem"] in stems]
        done = {(c["stem"], c["variant"]) for c in cells if c["iters"] == iters and c["lam"] == lam}
        if len(row) == len(stems) and all((s, v) in done for s in stems for v in ("rgb", "ir", "ir|rgb")):
            rates.append(float(np.mean([c["bpp"] for c in row])))
            quals.append(float(np.mean([c["psnr"] for c in row])))
    return rates, quals


def _pair_curve(cells: list[dict], ir_variant: str, iters: int, stems: list[str]) -> tuple[list[float], list[float]]:
    rates, quals = [], []
    for lam in sorted({c["lam"] for c in cells}):
        sel = {(c["stem"], c["variant"]): c for c in cells if c["iters"] == iters and c["lam"] == lam}
        if all((s, v) in sel for s in stems for v in ("rgb", ir_variant)):
            rates.append(float(np.mean([sel[(s, "rgb")]["bpp"] + sel[(s, ir_variant)]["bpp"] for s in stems])))
            quals.append(float(np.mean([(sel[(s, "rgb")]["psnr"] + sel[(s, ir_variant)]["psnr"]) / 2 for s in stems])))
    return rates, quals


def table(args: argparse.Namespace) -> None:
    from mmcodec.bench.bdrate import bd
    res = json.loads(Path(args.results).read_text())
    anchors = json.loads(Path(args.anchors).read_text())
    cells = [c for c in res["cells"] if not args.stems or c["stem"] in args.stems.split(",")]

    per_image = anchors["per_image"]

    def anchor_curve(name: str, group: str) -> tuple[list[float], list[float]]:
        """The anchor's mean bpp / PSNR over exactly the pairs measured (`stems`)."""
        key = "psnr-rgb" if group == "rgb" else "psnr"
        rates, quals = [], []
        for idx in sorted({r["rate_index"] for r in per_image if r["codec"] == name}):
            rows = {(r["stem"], r["modality"]): r for r in per_image
                    if r["codec"] == name and r["rate_index"] == idx and r["stem"] in stems}
            if group == "pair" and all((s, "pair") in rows for s in stems):
                rates.append(float(np.mean([rows[(s, "pair")]["bpp"] for s in stems])))
                quals.append(float(np.mean([rows[(s, "pair")]["psnr"] for s in stems])))
            elif group == "pair":
                rates.append(float(np.mean([rows[(s, "rgb")]["bpp"] + rows[(s, "ir")]["bpp"] for s in stems])))
                quals.append(float(np.mean([(rows[(s, "rgb")]["psnr-rgb"] + rows[(s, "ir")]["psnr"]) / 2
                                            for s in stems])))
            else:
                rates.append(float(np.mean([rows[(s, group)]["bpp"] for s in stems])))
                quals.append(float(np.mean([rows[(s, group)][key] for s in stems])))
        return rates, quals

    rows = []
    all_stems = set()
    for iters in sorted({c["iters"] for c in cells}):
        # pairs with every lambda and variant done at this budget (a run cut short leaves fewer)
        # (a lambda counts where all three variants are done; curves use the lambdas every kept pair has)
        def complete(s: str) -> int:
            return sum(sum(c["stem"] == s and c["iters"] == iters and c["lam"] == lam for c in cells) == 3
                       for lam in {c["lam"] for c in cells})
        stems = sorted(s for s in {c["stem"] for c in cells} if complete(s) >= 2)
        all_stems.update(stems)
        if not stems:
            continue
        for group, variant in (("rgb", "rgb"), ("ir", "ir"), ("ir", "ir|rgb"), ("pair", "ir"), ("pair", "ir|rgb")):
            rt, qt = _pair_curve(cells, variant, iters, stems) if group == "pair" else _curve(cells, variant, iters, stems)
            row = {"iters": iters, "pairs": stems, "group": group, "variant": variant, "points": len(rt),
                   "bpp": [round(v, 4) for v in rt], "psnr": [round(v, 2) for v in qt]}
            for name in ("hevc", "mmcodec:ir-vi/separate"):
                ra, qa = anchor_curve(name, group)
                r = bd(ra, qa, rt, qt)
                row[f"bd_vs_{name}"] = None if r.bd_rate is None else round(r.bd_rate, 1)
                row[f"bd_psnr_vs_{name}"] = None if r.bd_psnr is None else round(r.bd_psnr, 2)
                row[f"overlap_vs_{name}"] = [round(r.overlap_quality, 2), round(r.overlap_rate, 2)]
            if group == "ir" and variant == "ir|rgb":
                ru, qu = _curve(cells, "ir", iters, stems)
                r = bd(ru, qu, rt, qt)
                row["bd_vs_unconditioned"] = None if r.bd_rate is None else round(r.bd_rate, 1)
                row["bd_psnr_vs_unconditioned"] = None if r.bd_psnr is None else round(r.bd_psnr, 2)
            # per image; for the pair rows the sum of its two images (visible + this IR variant)
            parts = ["rgb", variant] if group == "pair" else [variant]
            for key, nd in (("encode_s", 1), ("decode_s", 2)):
                row[key] = round(sum(float(np.mean([c[key] for c in cells if c["iters"] == iters and c["stem"] in stems
                                                    and c["variant"] == v])) for v in parts), nd)
            rows.append(row)
            print(json.dumps(row))
    md = ["| iterations | pairs | group | variant | bpp range | PSNR range (dB) | BD-rate vs HEVC [BD-PSNR] | "
          "BD-rate vs ir-vi/separate [BD-PSNR] | vs unconditioned IR | encode s | decode s |",
          "|---:|---:|---|---|---|---|---|---|---|---:|---:|"]
    for r in rows:
        def fmt(name: str) -> str:
            b, p = r.get(f"bd_vs_{name}"), r.get(f"bd_psnr_vs_{name}")
            return f"{'n/a' if b is None else f'{b:+.1f} %'} [{'n/a' if p is None else f'{p:+.2f} dB'}]"
        md.append(f"| {r['iters']} | {len(r['pairs'])} | {r['group']} | {r['variant']} | "
                  f"{min(r['bpp']):.3f}..{max(r['bpp']):.3f} | {min(r['psnr']):.2f}..{max(r['psnr']):.2f} | "
                  f"{fmt('hevc')} | {fmt('mmcodec:ir-vi/separate')} | "
                  f"{'' if r['group'] != 'ir' or r['variant'] != 'ir|rgb' else fmt('unconditioned')} | "
                  f"{r['encode_s']} | {r['decode_s']} |")
    print("\n".join(md))
    if args.save:
        Path(args.save).with_suffix(".md").write_text("\n".join(md) + "\n")
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps({"split": res["split"], "stems": sorted(all_stems), "rows": rows}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("code")
    c.add_argument("--split", required=True)
    c.add_argument("--pairs", type=int, default=2)
    c.add_argument("--lambdas", default="0.002,0.006,0.02,0.06")
    c.add_argument("--iters", default="150,400")
    c.add_argument("--levels", type=int, default=7)
    c.add_argument("--lr", type=float, default=1e-2)
    c.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--anchors", required=True)
    t.add_argument("--save")
    t.add_argument("--stems", help="comma-separated pairs to restrict to (same pairs at every budget)")
    args = ap.parse_args()
    code(args) if args.cmd == "code" else table(args)


if __name__ == "__main__":
    main()
