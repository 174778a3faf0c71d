"""Issue 25: video RD measurements on the M3SVD test sequences (../shared/data/video_ir_vi/m3svd_frames).

Codecs, all at the same GOP (one I-frame per GOP, here one per sequence):
- x265 (libx265 of imageio-ffmpeg's ffmpeg): low-delay P (bframes=0), -tune psnr, fixed QP,
  visible 4:2:0, infrared 4:0:0 (gray); bytes of the raw HEVC stream.
- VVC (libvvenc, same ffmpeg): fixed QP, -qpa 0, yuv420p10le (the only input libvvenc takes;
  infrared as luma with neutral chroma). libvvenc through ffmpeg refuses GOPSize=1 (its
  low-delay configuration), so this is vvenc's default random-access GOP, which also uses
  future frames: an easier setting than low-delay, stated in BENCHMARKS.md.
- mmcodec intra-only: every frame by the shipped image pair codec (ir-vi/separate), in .mmv
  with GOP 1 (same container as the video models).
- mmcodec video models (ir-vi-video/separate, ir-vi-video/lu2022), GOP = --gop.
Rates are bits of the written streams per pixel per frame; PSNR is the mean over frames of
the per-frame PSNR (visible on RGB, infrared on its grey plane). Pair: rate of both streams
over one modality's pixels, quality = mean of the two PSNRs. BD-rates are computed per
sequence and averaged (mmcodec.bench.bdrate, pchip).

    mmcodec bench --video --data video_ir_vi/m3svd_frames --frames 8 --gop 8 --out results/video_bench
    (scripts/video_bench.py is the same with its defaults)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from mmcodec.bench.bdrate import bd
from mmcodec.data.pairs import data_root
from mmcodec.data.frames import read_pair_sequences

VIDEO_CODECS = "x265,vvc,intra,ir-vi-video/separate,ir-vi-video/lu2022"
QPS = [22, 27, 32, 37]
QUALITIES = [1, 2, 3, 4]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def _ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def classical(codec: str, frames: list[np.ndarray], qp: int, gop: int) -> tuple[int, list[np.ndarray], float]:
    """Encode a uint8 sequence, return (stream bytes, decoded frames, encode seconds)."""
    h, w = frames[0].shape[:2]
    grey = frames[0].ndim == 2
    raw = np.stack(frames).tobytes()
    src = ["-f", "rawvideo", "-pix_fmt", "gray" if grey else "rgb24", "-s", f"{w}x{h}", "-framerate", "30",
           "-i", "pipe:0"]
    if codec == "x265":
        enc = ["-pix_fmt", "gray" if grey else "yuv420p", "-c:v", "libx265", "-preset", "medium", "-tune", "psnr",
               "-x265-params", f"qp={qp}:keyint={gop}:min-keyint={gop}:bframes=0:scenecut=0:log-level=error",
               "-f", "hevc"]
        fmt = "hevc"
    else:
        enc = ["-pix_fmt", "yuv420p10le", "-c:v", "libvvenc", "-preset", "medium", "-qp", str(qp), "-qpa", "0",
               "-threads", "1", "-vvenc-params", f"IntraPeriod={max(16, -(-gop // 16) * 16)}", "-f", "vvc"]
        fmt = "vvc"
    t = time.perf_counter()
    stream = subprocess.run([_ffmpeg(), "-v", "error", *src, "-threads", "1", *enc, "pipe:1"], input=raw,
                            capture_output=True, check=True).stdout
    seconds = time.perf_counter() - t
    out = subprocess.run([_ffmpeg(), "-v", "error", "-f", fmt, "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt",
                          "gray" if grey else "rgb24", "pipe:1"], input=stream, capture_output=True, check=True).stdout
    dec = np.frombuffer(out, np.uint8).reshape((len(frames), h, w) + (() if grey else (3,)))
    return len(stream), list(dec), seconds


def learned(model: str | None, seqs: dict[str, list[np.ndarray]], q: int, gop: int, decode: bool,
            skip: bool = True) -> dict:
    from mmcodec.bitstream.video_container import unpack_video
    from mmcodec.video.codec import VideoCodec
    vc = VideoCodec.load(model, q, skip=skip)
    timing: dict[str, float] = {}
    blob, recon = vc.encode(seqs, gop, timing=timing)
    if decode:     # check the decoder repeats the encoder, and time it
        out = vc.decode(blob, timing=timing)
        assert all(np.array_equal(a, b) for m in out for a, b in zip(out[m], recon[m])), "decoder mismatch"
    info = unpack_video(blob).info(len(blob))
    return {"bytes": {m: info["stream_bytes"][m] for m in ("rgb", "ir")}, "total": len(blob), "recon": recon,
            "skipped": info["skipped_p_frames"], **timing}


def intra_only(seqs: dict[str, list[np.ndarray]], q: int) -> dict:
    """Every frame by the shipped image pair codec, stored as the video models store I-frames
    (one one-modality .mmc record per modality in a GOP-1 .mmv)."""
    import mmcodec
    from mmcodec.bitstream import Container, pack, unpack
    from mmcodec.bitstream.video_container import VideoContainer, pack_video
    from mmcodec.data.images import load_modality
    image = mmcodec.load("ir-vi/separate", quality=q)
    records, recon = [], {"rgb": [], "ir": []}
    t = time.perf_counter()
    for rgb, ir in zip(seqs["rgb"], seqs["ir"]):
        blob, rec = image.encode({"rgb": load_modality("rgb", rgb), "ir": load_modality("ir", ir)})
        c = unpack(blob)
        records.append({i.name: pack(Container(c.model, c.weights, c.quality, [i], {i.name: c.streams[i.name]}, c.side,
                                               c.tiling, c.exact_params, c.effort)) for i in c.modalities})
        for m in recon:
            recon[m].append(rec[m])
    seconds = time.perf_counter() - t
    h, w = seqs["ir"][0].shape
    blob = pack_video(VideoContainer("intra-only", "0" * 16, image.name, image.installed.weights_hash, q, 1, h, w,
                                     ("ir", "rgb"), records))
    return {"bytes": {m: sum(len(r[m]) for r in records) for m in ("rgb", "ir")}, "total": len(blob), "recon": recon,
            "encode_seconds": seconds}



def run_video(data: str, out: Path, frames: int, gop: int, codecs: str = VIDEO_CODECS,
              sequences: list[str] | None = None) -> str:
    """Measure every codec on every sequence (rows cached in OUT/rows.jsonl: a rerun skips
    finished cells); return the summary table (also in OUT/summary.md)."""
    import torch
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    done = set()
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["codec"], r["sequence"], r["point"]))
    root = Path(data) if Path(data).is_dir() else data_root() / data
    names = sequences or sorted(p.name for p in root.iterdir() if (p / "vi").is_dir() and (p / "ir").is_dir())
    for name in names:
        seqs = read_pair_sequences(root / name / "vi", root / name / "ir", frames)
        n, (h, w) = len(seqs["ir"]), seqs["ir"][0].shape
        pixels = n * h * w
        for codec in codecs.split(","):
            points = QPS if codec in ("x265", "vvc") else QUALITIES
            for p in points:
                if (codec, name, p) in done:
                    continue
                row = {"codec": codec, "sequence": name, "point": p, "frames": n, "gop": gop,
                       "width": w, "height": h}
                if codec in ("x265", "vvc"):
                    total, secs = 0, 0.0
                    for m in ("rgb", "ir"):
                        nbytes, dec, s = classical(codec, seqs[m], p, gop)
                        row[f"bpp_{m}"] = 8.0 * nbytes / pixels
                        row[f"psnr_{m}"] = float(np.mean([psnr(a, b) for a, b in zip(seqs[m], dec)]))
                        total, secs = total + nbytes, secs + s
                    row["pair_bpp"] = 8.0 * total / pixels
                    row["encode_s_per_pair"] = secs / n
                else:
                    # "<model>@noskip": every P-frame coded (the encoder's skip decision off).
                    model, _, option = codec.partition("@")
                    res = intra_only(seqs, p) if codec == "intra" else learned(model, seqs, p, gop, decode=p == 2,
                                                                               skip=option != "noskip")
                    for m in ("rgb", "ir"):
                        row[f"bpp_{m}"] = 8.0 * res["bytes"][m] / pixels
                        row[f"psnr_{m}"] = float(np.mean([psnr(a, b) for a, b in zip(seqs[m], res["recon"][m])]))
                    row["pair_bpp"] = 8.0 * res["total"] / pixels
                    row["encode_s_per_pair"] = res["encode_seconds"] / n
                    if "decode_seconds" in res:
                        row["decode_s_per_pair"] = res["decode_seconds"] / n
                    if "skipped" in res:
                        row["skipped_p_frames"] = res["skipped"]
                row["psnr_pair"] = (row["psnr_rgb"] + row["psnr_ir"]) / 2
                with open(rows_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    return summarise(rows_path, out / "summary.md")


def summarise(rows_path: Path, target: Path) -> str:
    rows = [json.loads(l) for l in rows_path.read_text().splitlines()]
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    seqs = sorted({r["sequence"] for r in rows})
    lines = ["| codec | point | bpp vi | PSNR vi | bpp ir | PSNR ir | pair bpp | enc s/pair | dec s/pair |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in codecs:
        for p in sorted({r["point"] for r in rows if r["codec"] == c}):
            rs = [r for r in rows if r["codec"] == c and r["point"] == p]
            mean = lambda k: np.mean([r[k] for r in rs if k in r]) if any(k in r for r in rs) else float("nan")  # noqa: E731
            lines.append(f"| {c} | {p} | {mean('bpp_rgb'):.4f} | {mean('psnr_rgb'):.2f} | {mean('bpp_ir'):.4f} | "
                         f"{mean('psnr_ir'):.2f} | {mean('pair_bpp'):.4f} | {mean('encode_s_per_pair'):.2f} | "
                         f"{mean('decode_s_per_pair'):.2f} |")
    lines += ["", "BD-rate (%, negative = fewer bits), mean over sequences (pchip):", "",
              "| test | anchor | visible | infrared | pair |", "|---|---|---|---|---|"]
    models = [c for c in codecs if c not in ("x265", "vvc", "intra")]
    candidates = [(t, a) for t in models for a in ("intra", "x265", "vvc")]
    candidates += [(t, t.replace("lu2022", "separate")) for t in models if "lu2022" in t]
    candidates += [(t.partition("@")[0], t) for t in models if "@" in t]
    candidates += [("intra", "x265"), ("intra", "vvc"), ("vvc", "x265")]
    pairs = [(t, a) for t, a in candidates if t in codecs and a in codecs]
    for t, a in pairs:
        cells = []
        for rate_key, q_key in (("bpp_rgb", "psnr_rgb"), ("bpp_ir", "psnr_ir"), ("pair_bpp", "psnr_pair")):
            vals = []
            for s in seqs:
                ra = sorted((r[rate_key], r[q_key]) for r in rows if r["codec"] == a and r["sequence"] == s)
                rt = sorted((r[rate_key], r[q_key]) for r in rows if r["codec"] == t and r["sequence"] == s)
                if len(ra) >= 2 and len(rt) >= 2:
                    res = bd([x for x, _ in ra], [y for _, y in ra], [x for x, _ in rt], [y for _, y in rt])
                    if res.bd_rate is not None:
                        vals.append(res.bd_rate)
            cells.append(f"{np.mean(vals):+.1f} ({len(vals)}/{len(seqs)})" if vals else "n/a")
        lines.append(f"| {t} | {a} | " + " | ".join(cells) + " |")
    target.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)




def run_from_args(args: argparse.Namespace) -> int:
    from mmcodec.bench.runner import DEFAULT_CODECS
    codecs = VIDEO_CODECS if args.codecs == DEFAULT_CODECS else args.codecs
    print(run_video(args.data, Path(args.out), args.frames, args.gop, codecs, args.sequences))
    return 0
