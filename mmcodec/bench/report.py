"""`mmcodec bench --report`: a self-contained HTML page to look at the decoded images.

report.html (in the --out folder) shows, for up to 3 pairs, each modality's original and every
codec's reconstruction at the rate point whose bpp (of that image) is nearest, on a log scale,
to a common target, with an enlarged centre crop for a side-by-side look; then the RD plots the
bench wrote (rd_*.png) and the BD-rate table. Images are PNG files in report_images/ beside it;
the page uses no script, stylesheet or font from elsewhere.

The cache keeps metrics, not decoded images: the chosen rate points are coded again here
(classical codecs per modality, mmcodec models per pair), and the page says when a re-coded
size differs from the cached one.
"""
from __future__ import annotations

import html
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mmcodec.bench import metrics as M

IMAGES_DIR = "report_images"
CROP = 128          # centre crop side (pixels), shown enlarged
ZOOM = 3            # nearest-neighbour enlargement of the crop


def _target_bpp(codec_results: dict[str, dict], group: str, anchor: str) -> float | None:
    """Geometric middle of the bpp range every codec covers for `group` (the anchor's middle
    rate point when the ranges do not overlap)."""
    ranges = [(min(r[group]["results"]["bpp"]), max(r[group]["results"]["bpp"]))
              for r in codec_results.values() if group in r and r[group]["results"]["bpp"]]
    if not ranges:
        return None
    lo, hi = max(a for a, _ in ranges), min(b for _, b in ranges)
    if 0 < lo <= hi:
        return math.sqrt(lo * hi)
    bpps = sorted(codec_results.get(anchor, {}).get(group, {}).get("results", {}).get("bpp", [])) \
        or sorted(b for a, b in ranges)
    return bpps[len(bpps) // 2]


def _nearest_rate(cut: Any, cells: dict[tuple[int, str], dict], stem: str, group: str, target: float):
    best = None
    for rate in cut.rates:
        row = cells.get((rate.index, stem), {}).get(group)
        if row is None or row["bpp"] <= 0:
            continue
        dist = abs(math.log(row["bpp"] / target))
        if best is None or dist < best[0]:
            best = (dist, rate, row)
    return None if best is None else best[1:]


def _display(arr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """8-bit view of an image; 16-bit depth is stretched with the reference's min..max."""
    if arr.dtype == np.uint8:
        return arr
    lo, hi = float(ref.min()), float(ref.max())
    return np.clip(np.rint((arr.astype(np.float64) - lo) * 255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def _crop_box(h: int, w: int) -> tuple[int, int, int, int]:
    ch, cw = min(CROP, h), min(CROP, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return top, left, ch, cw


def _save(img: np.ndarray, path: Path, zoom: int = 1) -> None:
    from PIL import Image
    pil = Image.fromarray(img)
    if zoom > 1:
        pil = pil.resize((img.shape[1] * zoom, img.shape[0] * zoom), Image.NEAREST)
    pil.save(path, optimize=True)


def _md_to_html(md: str) -> str:
    """The bench's bd_rate.md (paragraphs and pipe tables) as HTML."""
    def inline(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))
    out, table = [], []

    def flush() -> None:
        if not table:
            return
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in table
                if not re.fullmatch(r"\|?[\s|:-]+\|?", ln.strip())]
        out.append("<table>")
        for i, row in enumerate(rows):
            tag = "th" if i == 0 else "td"
            out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in row) + "</tr>")
        out.append("</table>")
        table.clear()
    for line in md.splitlines():
        if line.strip().startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def _quality_text(group: str, row: dict, primary: str) -> str:
    keys = [primary] + [k for k in ("psnr-rgb", "psnr", "ms-ssim-db") if k != primary]
    parts = [f"{k} {row[k]:.2f}" for k in keys if isinstance(row.get(k), (int, float))]
    return ", ".join(parts)


def write_report(out: Path, cuts: list, pairs: list, cells: dict[str, dict], codec_results: dict[str, dict],
                 bd_md: str, plots: list[Path], anchor: str, primary: dict[str, str],
                 target_bpp: float | None = None, n_pairs: int = 3) -> Path:
    img_dir = out / IMAGES_DIR
    if img_dir.exists():
        shutil.rmtree(img_dir)
    img_dir.mkdir(parents=True)
    chosen = pairs[:max(1, min(3, n_pairs))]
    modalities = list(chosen[0].images)
    targets = {g: (target_bpp if target_bpp is not None else _target_bpp(codec_results, g, anchor))
               for g in modalities}
    mm_decoded: dict[tuple[str, int, str], dict[str, np.ndarray]] = {}
    sections = []
    for pi, pair in enumerate(chosen):
        blocks = []
        for g in modalities:
            ref = pair.images[g]
            h, w = ref.shape[:2]
            top, left, ch, cw = _crop_box(h, w)
            figures = []

            def add(label: str, caption: str, img: np.ndarray, key: str) -> None:
                view = _display(img, ref)
                full, crop = f"{IMAGES_DIR}/p{pi}_{g}_{key}.png", f"{IMAGES_DIR}/p{pi}_{g}_{key}_crop.png"
                _save(view, out / full)
                _save(np.ascontiguousarray(view[top:top + ch, left:left + cw]), out / crop, ZOOM)
                figures.append(f'<figure><a href="{html.escape(full)}"><img src="{html.escape(crop)}" '
                               f'width="{cw * ZOOM}" height="{ch * ZOOM}" alt="{html.escape(label)}"></a>'
                               f"<figcaption><b>{html.escape(label)}</b><br>{html.escape(caption)}</figcaption></figure>")
            add("original", f"{w}x{h}, {ref.dtype}", ref, "original")
            target = targets[g]
            for ci, cut in enumerate(cuts):
                if g not in cut.modalities or target is None:
                    continue
                found = _nearest_rate(cut, cells[cut.name], pair.stem, g, target)
                if found is None:
                    continue
                rate, row = found
                note = ""
                if cut.classical is not None:
                    coded = cut.classical.code(ref, rate.params[g])
                    decoded = coded.decoded
                    if coded.nbytes != row["bytes"]:
                        note = f" (re-coded: {coded.nbytes} B, cached {row['bytes']} B)"
                else:
                    key = (cut.name, rate.index, pair.stem)
                    if key not in mm_decoded:
                        from mmcodec.data.images import load_modality
                        images = {m: load_modality(m, pair.paths[m]) for m in cut.modalities}
                        quality = int(next(iter(rate.params.values())))
                        blob = cut.mmcodec.compress_images(images, quality, cut.settings.get("effort", 0))
                        mm_decoded[key] = cut.mmcodec.decompress(blob)
                    decoded = np.asarray(mm_decoded[key][g])
                    if g == "rgb":
                        decoded = M.as_rgb(decoded)
                    elif decoded.ndim == 3:
                        decoded = decoded[..., 0]
                caption = (f"{rate.label}: {row['bpp']:.3f} bpp, {row['bytes']} B{note}; "
                           f"{_quality_text(g, row, primary.get(g, 'psnr'))}")
                add(cut.name, caption, decoded, f"c{ci}")
            tgt = "n/a" if target is None else f"{target:.3f}"
            blocks.append(f"<h3>{html.escape(g)}</h3><p>target {tgt} bpp; centre crop {cw}x{ch} at "
                          f"({left}, {top}) shown {ZOOM}x (nearest neighbour); click a crop for the whole image"
                          + ("; 16-bit values shown stretched from the original's min..max" if ref.dtype == np.uint16 else "")
                          + f'</p><div class="row">{"".join(figures)}</div>')
        sections.append(f"<h2>Pair {html.escape(pair.stem)}</h2>" + "".join(blocks))
    plot_html = "".join(f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></figure>'
                        for p in plots if p.exists())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmcodec bench report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.row {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0 0 10px 0; }}
figcaption {{ font-size: 12px; max-width: {CROP * ZOOM}px; }}
img {{ image-rendering: pixelated; border: 1px solid #ccc; }}
table {{ border-collapse: collapse; margin: 8px 0; font-size: 13px; }}
td, th {{ border: 1px solid #bbb; padding: 2px 6px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head><body>
<h1>mmcodec bench report</h1>
<p>Codecs: {html.escape(", ".join(c.name for c in cuts))}; anchor {html.escape(anchor)}. Each reconstruction is
the codec's rate point nearest (log scale) to the target bpp of that modality; reconstructions are coded again
from the cached rate point.</p>
{"".join(sections)}
<h2>Rate-distortion</h2><div class="row">{plot_html or "<p>(no plots: --no-plots)</p>"}</div>
<h2>BD-rate</h2>
{_md_to_html(bd_md)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path
