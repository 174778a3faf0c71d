"""Issue 20: encoder-effort tables and the gain-vs-seconds plot from `mmcodec bench` outputs.

    .venv/bin/python scripts/effort_table.py results/effort/msrs-subset results/effort/roadscene-test \
        --plot docs/effort_gain.png

For every `mmcodec:<model>@effort=E` codec of each bench folder (results.json): BD-rate per
modality and for the pair against the same model at effort 0 and against HEVC intra, and the
mean encode and decode seconds per pair. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcodec.bench.bdrate import bd


def _curve(entry: dict, group: str) -> tuple[list[float], list[float], dict]:
    res = entry["results"][group]
    res = res.get("results", res)
    psnr = res.get(f"psnr-{group}", res.get("psnr"))
    return res["bpp"], psnr, res


def _bd(anchor: dict, test: dict, group: str) -> float | None:
    a_bpp, a_psnr, _ = _curve(anchor, group)
    t_bpp, t_psnr, _ = _curve(test, group)
    return bd(a_bpp, a_psnr, t_bpp, t_psnr).bd_rate


def rows(folder: Path) -> list[dict]:
    codecs = json.loads((folder / "results.json").read_text())["codecs"]
    out = []
    for name, entry in codecs.items():
        if not name.startswith("mmcodec:"):
            continue
        base = name.split("@")[0]
        effort = int(name.split("@effort=")[1]) if "@effort=" in name else 0
        groups = [g for g in entry["results"] if g != "pair"]
        row = {"data": folder.name, "codec": base, "effort": effort}
        for g in [*groups, "pair"]:
            if base in codecs:
                row[f"vs0_{g}"] = _bd(codecs[base], entry, g)
            if "hevc" in codecs and g in codecs["hevc"]["results"]:
                row[f"vshevc_{g}"] = _bd(codecs["hevc"], entry, g)
        _, _, res = _curve(entry, groups[0])
        row["encode_s"] = sum(res["encoding_time"]) / len(res["encoding_time"])
        row["decode_s"] = sum(res["decoding_time"]) / len(res["decoding_time"])
        row["images"] = max(res["images"])
        row["groups"] = groups
        out.append(row)
    return sorted(out, key=lambda r: (r["codec"], r["effort"]))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def markdown(all_rows: list[dict]) -> str:
    lines = ["| data | model | effort | pairs | BD-rate vs effort 0 (per modality; pair) | BD-rate vs HEVC intra "
             "(per modality; pair) | encode s / pair | decode s / pair |", "|---|---|---|---|---|---|---|---|"]
    for r in all_rows:
        g = r["groups"]
        vs0 = ", ".join(f"{m} {_pct(r.get(f'vs0_{m}'))}" for m in g) + f"; pair {_pct(r.get('vs0_pair'))}"
        vsh = ", ".join(f"{m} {_pct(r.get(f'vshevc_{m}'))}" for m in g) + f"; pair {_pct(r.get('vshevc_pair'))}"
        lines.append(f"| {r['data']} | {r['codec'].split(':', 1)[1]} | {r['effort']} | {r['images']} | {vs0} | {vsh} | "
                     f"{r['encode_s']:.2f} | {r['decode_s']:.2f} |")
    return "\n".join(lines)


def plot(all_rows: list[dict], png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(r["data"], r["codec"]) for r in all_rows}):
        pts = [(r["encode_s"], r.get("vs0_pair") or 0.0, r["effort"]) for r in all_rows if (r["data"], r["codec"]) == key]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[1].split(':', 1)[1]}, {key[0]}")
        for s, v, e in pts:
            ax.annotate(str(e), (s, v), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("encode seconds per pair (bench wall time, 1 thread, 2-core CPU shared with other jobs)")
    ax.set_ylabel("pair BD-rate vs effort 0 (%)")
    ax.set_title("Encoder effort: bits saved against encode time (labels: effort)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--plot", type=Path)
    args = p.parse_args()
    all_rows = [r for f in args.folders for r in rows(f)]
    print(markdown(all_rows))
    if args.plot:
        plot(all_rows, args.plot)


if __name__ == "__main__":
    main()
