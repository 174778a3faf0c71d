"""`mmcodec` command line: a thin layer over the Python API.

Exit codes: 0 success, 2 bad input (files, images, streams, models), 1 internal error.
Every command accepts --json for machine-readable output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit notices from compressai imports


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=None if getattr(args, "json", False) else 2) if args.json else text)


def _folder_names(modalities: list[str] | tuple[str, ...]) -> dict[str, str]:
    from mmcodec.data.pairs import LAYOUTS
    kind = "ir-vi" if "ir" in modalities else "rgb-d"
    return LAYOUTS[kind]


# -- commands --------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from mmcodec.models.registry import installed_models
    models = [m.summary() for m in installed_models() + installed_models(kind="video")]
    lines = [f"{m['name']:<22} {'+'.join(m['modalities']):<10} qualities {m['qualities'][0]}..{m['qualities'][-1]}"
             f"{'  (default)' if m['default'] else ''}  {m['description']}" for m in models]
    _emit(args, models, "\n".join(lines) or "no models installed")
    return 0


def _is_video_file(path: str) -> bool:
    from mmcodec.bitstream.video_container import VIDEO_MAGIC
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(4) == VIDEO_MAGIC


def cmd_info_video(args: argparse.Namespace) -> int:
    from mmcodec.bitstream.video_container import unpack_video
    data = Path(args.file).read_bytes()
    info = unpack_video(data).info(len(data))
    per = ", ".join(f"{m} {info['stream_bytes'][m]} B ({info['bpp'][m]:.4f} bpp)" for m in info["stream_bytes"])
    mean = "; ".join(f"{t}-frames " + ", ".join(f"{m} {v:.0f} B" for m, v in d.items() if v is not None)
                     for t, d in info["mean_bytes"].items() if any(v is not None for v in d.values()))
    text = (f"{args.file}: video model {info['model']} (weights {info['weights']}), I-frames by "
            f"{info['iframe_model']} ({info['iframe_weights']}), quality {info['quality']}\n"
            f"  {info['frames']} frames {info['width']}x{info['height']}, GOP {info['gop']} ({info['frame_types']})\n"
            f"  streams: {per}; mean per frame: {mean}\n"
            f"  skipped P-frames (previous frame repeated): "
            + ", ".join(f"{m} {k}" for m, k in info["skipped_p_frames"].items()) + "\n"
            f"  total {info['total_bytes']} B, pair {info['pair_bpp']:.4f} bpp")
    _emit(args, info, text)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    if _is_video_file(args.file):
        return cmd_info_video(args)
    from mmcodec.codec import read_container
    c, size = read_container(args.file)
    info = c.info(size)
    mods = ", ".join(f"{m['name']} {m['width']}x{m['height']} {m['bit_depth']}-bit"
                     + (" grey, coded by the infrared codec" if m.get("grey_via_ir") else "") for m in info["modalities"])
    streams = ", ".join(f"{k} {v} B ({info['bpp'][k]:.4f} bpp)" for k, v in info["stream_bytes"].items())
    text = (f"{args.file}: model {info['model']} (weights {info['weights']}), quality {info['quality']}, "
            f"encoder effort {info['effort']}\n"
            f"  images: {mods}\n  streams: {streams}; side info {info['side_bytes']} B\n"
            f"  total {info['total_bytes']} B, pair {info['pair_bpp']:.4f} bpp\n"
            f"  format version {info['format_version']}, latent CRCs {'yes' if info['latent_crcs'] else 'no'}, "
            f"{info['pixels']} pixels to decode")
    if info["tiling"]:
        text += (f"\n  tiled synthesis: tiles of up to {info['tiling']['tile_pixels']} px, "
                 f"halo {info['tiling']['halo_pixels']} px")
    _emit(args, info, text)
    return 0


def _pair_jobs(args: argparse.Namespace) -> tuple[list[tuple[str, dict[str, Path], Path]], str]:
    """(stem, {modality: path}, output file) for every pair to code, and the pair kind."""
    from mmcodec.data.pairs import LAYOUTS, find_pairs
    from mmcodec.errors import BadInputError
    explicit = {m: getattr(args, m) for m in ("rgb", "ir", "depth") if getattr(args, m)}
    if args.input and explicit:
        raise BadInputError("give either a folder or --rgb/--ir/--depth files, not both")
    if explicit:
        if "ir" in explicit and "depth" in explicit:
            raise BadInputError("give --ir or --depth, not both")
        kind = "rgb-d" if "depth" in explicit else "ir-vi"
        missing = [m for m in LAYOUTS[kind] if m not in explicit]
        if missing:
            raise BadInputError(f"missing --{missing[0]} for a {kind} pair")
        out = Path(args.output)
        if out.is_dir():
            out = out / (Path(explicit["rgb"]).stem + ".mmc")
        return [(Path(explicit["rgb"]).stem, {m: Path(p) for m, p in explicit.items()}, out)], kind
    if not args.input:
        raise BadInputError("nothing to compress: give a folder of pairs or --rgb with --ir/--depth")
    records = find_pairs(args.input, args.split)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output must be a directory in folder mode: {out_dir}")
    jobs = [(r.stem, dict(r.paths), out_dir / f"{r.stem}.mmc") for r in records]
    if args.shard:
        try:
            i, n = (int(v) for v in args.shard.split("/"))
            assert 0 <= i < n
        except (ValueError, AssertionError):
            raise BadInputError(f"--shard must be i/n with 0 <= i < n, got {args.shard!r}") from None
        jobs = jobs[i::n]
    return jobs, records[0].kind


def cmd_compress(args: argparse.Namespace) -> int:
    import mmcodec
    from tqdm import tqdm
    jobs, kind = _pair_jobs(args)
    from mmcodec.parallel import compress_pair
    from mmcodec.refine import check_effort
    if args.effort is not None:
        check_effort(args.effort)
    codec = mmcodec.load(args.model, quality=args.quality, pair=kind, tile=args.tile)
    effort = codec.resolve_effort(args.effort)
    if set(codec.modalities) != set(_folder_names(codec.modalities)) or \
            ("ir" in codec.modalities) != (kind == "ir-vi"):
        from mmcodec.errors import BadInputError
        raise BadInputError(f"model {codec.name} codes {'+'.join(codec.modalities)} pairs, input is {kind}")
    results, skipped = [], 0
    folder_mode = bool(args.input)
    todo = [j for j in jobs if not (folder_mode and j[2].exists())]
    skipped = len(jobs) - len(todo)
    if folder_mode and args.workers > 1 and len(todo) > 1:
        from mmcodec.parallel import compress_parallel
        results = compress_parallel(codec.name, codec.quality, todo, args.workers, progress=not args.json,
                                    tile=codec.tile, effort=effort)
    else:
        for stem, paths, out in tqdm(todo, desc="compress", unit="pair", disable=not folder_mode or args.json):
            results.append(compress_pair(codec, stem, paths, out, effort, progress=not (folder_mode or args.json)))
    summary = {"model": codec.name, "quality": codec.quality, "effort": effort, "coded": len(results),
               "skipped": skipped, "results": results}
    if folder_mode:
        text = (f"coded {len(results)} pairs with {codec.name} q{codec.quality} effort {effort}, "
                f"skipped {skipped} already done")
    else:
        r = results[0]
        text = (f"{r['output']}: {r['bytes']} bytes, {r['pair_bpp']:.4f} bpp (pair), {codec.name} q{codec.quality}, "
                f"effort {effort}")
    _emit(args, summary if folder_mode else {**summary, **results[0]}, text)
    return 0


def cmd_compress_video(args: argparse.Namespace) -> int:
    from mmcodec.files import atomic_write
    from mmcodec.video.codec import VideoCodec
    from mmcodec.data.frames import read_pair_sequences
    from mmcodec.errors import BadInputError
    out = Path(args.output)
    if out.is_dir():
        raise BadInputError(f"output must be a file, not a directory: {out}")
    seqs = read_pair_sequences(args.rgb, args.ir, args.frames)   # checks counts and sizes first
    vc = VideoCodec.load(args.model, args.quality, skip=not args.no_skip)
    blob, _ = vc.encode(seqs, args.gop, progress=not args.json)
    try:
        atomic_write(out, blob)
    except OSError as exc:
        raise BadInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    n = len(seqs["ir"])
    h, w = seqs["ir"][0].shape
    summary = {"output": str(out), "model": vc.name, "quality": vc.quality, "gop": args.gop, "frames": n,
               "bytes": len(blob), "pair_bpp": 8.0 * len(blob) / (n * h * w)}
    _emit(args, summary, f"{out}: {n} frames, {len(blob)} bytes, {summary['pair_bpp']:.4f} bpp (pair), "
          f"{vc.name} q{vc.quality}, GOP {args.gop}")
    return 0


def cmd_decompress_video(args: argparse.Namespace) -> int:
    from mmcodec.bitstream.video_container import unpack_video
    from mmcodec.errors import BadInputError, ReconstructionMismatchWarning
    from mmcodec.video.codec import codec_for_video
    from mmcodec.data.frames import write_frames
    if args.only == "depth":
        raise BadInputError("--only depth: a video stream holds ir and rgb")
    src = Path(args.file)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output must be a directory: {out_dir}")
    data = src.read_bytes()
    header = unpack_video(data, need=())          # header and index checks before a model loads
    vc = codec_for_video(header)
    wanted = None if args.only is None else tuple(vc.model.requires(args.only))
    c = unpack_video(data, need=wanted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReconstructionMismatchWarning)
        frames = vc.decode(c, only=args.only, progress=not args.json, strict=args.strict)
    for w in caught:
        print(f"mmcodec: warning: {src}: {' '.join(str(w.message).split())}", file=sys.stderr)
    # Everything is decoded before the first file is written: a damaged stream leaves nothing.
    names = _folder_names(["rgb", "ir"])
    written: list[Path] = []
    try:
        for m, seq in frames.items():
            written += write_frames(out_dir / names[m], seq)
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        raise BadInputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    _emit(args, {"written": [str(p) for p in written], "frames": c.frames},
          f"wrote {c.frames} frames of {', '.join(frames)} to {out_dir}")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    if _is_video_file(args.file):
        return cmd_decompress_video(args)
    from tqdm import tqdm
    from mmcodec.codec import Codec, codec_for_stream, read_container
    from mmcodec.data.images import write_image
    from mmcodec.errors import BadInputError, ModelMismatchError, ReconstructionMismatchWarning
    src = Path(args.file)
    files = sorted(src.glob("*.mmc")) if src.is_dir() else [src]
    if src.is_dir() and not files:
        raise BadInputError(f"no .mmc files in {src}")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output must be a directory: {out_dir}")
    codecs: dict[tuple[str, int], Codec] = {}
    written = []
    for f in tqdm(files, desc="decompress", unit="pair", disable=len(files) == 1 or args.json):
        c, _ = read_container(f, max_pixels=args.max_pixels)   # before any model is loaded
        key = (c.model, c.quality)
        if key not in codecs:
            try:
                codecs[key] = codec_for_stream(c)
            except ModelMismatchError as exc:
                raise ModelMismatchError(f"{f}: {exc}") from None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ReconstructionMismatchWarning)
            images = codecs[key].decompress(c, only=args.only, strict=args.strict, max_pixels=args.max_pixels)
        for w in caught:
            if issubclass(w.category, ReconstructionMismatchWarning):
                print(f"mmcodec: warning: {f}: {' '.join(str(w.message).split())}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        names = _folder_names([m.name for m in c.modalities])
        pair_files: list[Path] = []
        try:
            for m, arr in images.items():
                path = out_dir / names[m] / f"{f.stem}.png"
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None
                write_image(path, arr)
                pair_files.append(path)
        except BadInputError:
            for p in pair_files:  # never leave half a pair behind
                p.unlink(missing_ok=True)
            raise
        written += [str(p) for p in pair_files]
    _emit(args, {"written": written}, "\n".join(f"wrote {p}" for p in written))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.config:
        from mmcodec.video.train import is_video_config
        if is_video_config(args.config):   # {"kind": "video"}: the video trainer (issue 25)
            from mmcodec.video.train import load_video_config, train_video
            vcfg = load_video_config(args.config, args.overrides)
            result = train_video(vcfg, resume=args.resume, progress=not args.json)
            _emit(args, result, f"trained {vcfg['name']}: {result['budget']['steps']} steps, model at {result['manifest']}")
            return 0
    from mmcodec.train import load_config, train
    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume, progress=not args.json)
    _emit(args, result, f"trained {cfg.name}: {result['budget']['steps']} steps, model at {result['manifest']}")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from mmcodec.train.campaign import plot_ledger
    from mmcodec.train.evaluate import read_ledger
    from mmcodec.errors import BadInputError
    entries = read_ledger(Path(args.file))
    if not entries:
        raise BadInputError(f"no ledger entries in {args.file}")
    if args.anchor:  # (re)compute BD-rate vs HEVC for rows evaluated before the anchor existed
        from mmcodec.train.evaluate import anchor_rows_from_results, bd_rates
        for e in entries:
            mods = [k[4:] for k in (e.get("eval") or [{}])[0] if k.startswith("bpp_")]
            anchor = anchor_rows_from_results(Path(args.anchor), "hevc", mods) if mods else None
            if anchor:
                e["bd_rate_vs_hevc"] = bd_rates(e["eval"], anchor, mods)
    if args.plot:
        plot_ledger(entries, Path(args.plot))
    if args.versus:  # BD-rate of each entry against the last entry of another ledger
        from mmcodec.train.evaluate import bd_rates
        path, _, at = args.versus.partition("@")   # @STEPS or @MODEL-NAME
        other = [o for o in read_ledger(Path(path))
                 if not at or (o["steps"] == int(at) if at.isdigit() else o["model"] == at)]
        if not other:
            raise BadInputError(f"no ledger entries in {args.versus}")
        ref = other[-1]
        for e in entries:
            mods = [k[4:] for k in e["eval"][0] if k.startswith("bpp_")]
            e["bd_rate_vs_" + ref["model"]] = bd_rates(e["eval"], ref["eval"], mods, pair=True)
    lines = [f"{'date':<26} {'steps':>7} {'CPU-h':>6}  BD-rate vs HEVC (test)   shipped"]
    for e in entries:
        bd = ", ".join(f"{m} {v:+.1f}%" for m, v in (e.get("bd_rate_vs_hevc") or {}).items() if v is not None)
        lines.append(f"{e['date']:<26} {e['steps']:>7} {e['cpu_hours']:>6.2f}  {bd or '-':<24} {e.get('shipped', '-')}")
        for key in (k for k in e if k.startswith("bd_rate_vs_") and k != "bd_rate_vs_hevc" and e[k]):
            lines.append(f"    {e['model']} {key.replace('bd_rate_', '').replace('_', ' ')}: "
                         + ", ".join(f"{m} {v:+.1f}%" for m, v in e[key].items() if v is not None))
    if args.table:  # the last entry's rate points as a Markdown table
        e = entries[-1]
        mods = [k[4:] for k in e["eval"][0] if k.startswith("bpp_")]
        lines += ["", f"{e['model']} after {e['steps']} steps ({e['cpu_hours']:.2f} CPU-h), {e['eval_split']}, "
                  f"{e['eval'][0]['images']} pairs, bpp from .mmc bytes", "",
                  "| quality | " + " | ".join(f"{m} bpp | {m} PSNR (dB)" for m in mods) + " | pair bpp (file) |",
                  "|---" * (2 + 2 * len(mods)) + "|"]
        for r in e["eval"]:
            lines.append(f"| {r['quality']} | " + " | ".join(f"{r[f'bpp_{m}']:.4f} | {r[f'psnr_{m}']:.2f}" for m in mods)
                         + f" | {r['pair_bpp']:.4f} |")
    _emit(args, entries, "\n".join(lines))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mmcodec.bench.runner import run_from_args
    return run_from_args(args)


def _pixel_bound(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a pixel count >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmcodec", description="Learned joint compression of multi-modal image pairs.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    sp = add("compress", "code a pair (or every pair of a folder) into .mmc files")
    sp.add_argument("input", nargs="?", help="folder with vi/+ir/ or rgb/+depth/ subfolders")
    sp.add_argument("--rgb", help="visible / RGB image")
    sp.add_argument("--ir", help="infrared image (8- or 16-bit)")
    sp.add_argument("--depth", help="depth map (8- or 16-bit)")
    sp.add_argument("-o", "--output", required=True, help="output .mmc file, or directory in folder mode")
    sp.add_argument("--model", help="installed model name (default: the pair type's default)")
    sp.add_argument("--quality", type=int, help="rate point, 1 (smallest) .. highest (see `mmcodec models`)")
    sp.add_argument("--split", help="folder mode: file listing the stems to code")
    sp.add_argument("--workers", type=int, default=1, help="folder mode: parallel worker processes")
    sp.add_argument("--shard", help="folder mode: code only shard i of n (i/n), for job arrays")
    sp.add_argument("--tile", type=int, help="code in tiles of this many pixels (a multiple of 16, e.g. 512) to "
                    "bound memory; 0 = whole image; default: tiles of 1024 above 2 megapixels")
    from mmcodec.refine import DEFAULT_EFFORT, EFFORT_ITERATIONS
    levels = ", ".join(f"{e} = {n} iterations" for e, n in EFFORT_ITERATIONS.items())
    sp.add_argument("--effort", type=int, help=f"encoder effort 0-3: refine the latents at encode time ({levels}; "
                    f"0 = no refinement). More effort, fewer bits, same decoder. Default {DEFAULT_EFFORT}")
    sp.set_defaults(func=cmd_compress)

    sp = add("decompress", "decode a .mmc file (or a folder of them) to PNG images, or a .mmv video to "
             "OUTDIR/vi/0000.png... and OUTDIR/ir/...")
    sp.add_argument("file", help=".mmc file, folder of .mmc files, or .mmv video")
    sp.add_argument("-o", "--output", required=True, help="output directory")
    sp.add_argument("--only", choices=["rgb", "ir", "depth"], help="decode one modality only")
    sp.add_argument("--strict", action="store_true",
                    help="refuse an image that differs from the encoder's reconstruction even when every latent "
                    "decoded exactly (default: write it with a warning; only files of format version 9+ "
                    "can tell, older ones are always refused)")
    from mmcodec.bitstream.container import DEFAULT_MAX_PIXELS
    sp.add_argument("--max-pixels", type=_pixel_bound, default=DEFAULT_MAX_PIXELS, metavar="N",
                    help="refuse a file whose images add up to more than N pixels (sum of height x width over "
                    f"the modalities), before decoding; default {DEFAULT_MAX_PIXELS} (2^27, a pair of "
                    "8192x8192 images); 0 = only the format's limits")
    sp.set_defaults(func=cmd_decompress)

    sp = add("compress-video", "code a visible + infrared video pair into one .mmv file")
    sp.add_argument("--rgb", required=True, help="visible video (MP4/MKV/AVI/...) or folder of frames")
    sp.add_argument("--ir", required=True, help="infrared video or folder of frames (8-bit grey)")
    sp.add_argument("-o", "--output", required=True, help="output .mmv file")
    sp.add_argument("--model", help="installed video model (default: the default video model, see `mmcodec models`)")
    sp.add_argument("--quality", type=int, help="rate point 1..4 (the I-frames use the image codec at the same quality)")
    sp.add_argument("--gop", type=int, default=10, help="frames per group of pictures: one I-frame, then P-frames "
                    "(default 10)")
    sp.add_argument("--frames", type=int, help="code only the first N frames")
    sp.add_argument("--no-skip", action="store_true", help="code every P-frame (by default the encoder repeats the "
                    "previous frame instead where that has the lower rate-distortion cost)")
    sp.set_defaults(func=cmd_compress_video)

    sp = add("info", "describe a .mmc or .mmv file")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_info)

    sp = add("models", "list installed models")
    sp.set_defaults(func=cmd_models)

    sp = add("train", "train a model (config file + key=value overrides)")
    sp.add_argument("--config", help="JSON config (see configs/)")
    sp.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=4000 lr=5e-4")
    sp.set_defaults(func=cmd_train)

    sp = add("ledger", "show a training ledger (and plot BD-rate vs CPU-hours)")
    sp.add_argument("file", help="ledger JSONL written by `mmcodec train`")
    sp.add_argument("--plot", help="write the training curve to this PNG")
    sp.add_argument("--table", action="store_true", help="print the last entry's rate points as a table")
    sp.add_argument("--versus", help="LEDGER[@STEPS|@MODEL]: BD-rate of each entry vs that ledger's last entry (or its last one at STEPS, or of MODEL), per modality and pair")
    sp.add_argument("--anchor", help="bench output folder with the HEVC curve (e.g. benchmarks/roadscene-test)")
    sp.set_defaults(func=cmd_ledger)

    sp = add("bench", "rate-distortion benchmark against classical codecs and separate coding")
    try:
        from mmcodec.bench.runner import add_arguments
        add_arguments(sp)
    except ImportError:
        pass
    sp.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from mmcodec.errors import MMCodecError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except MMCodecError as exc:
        msg = str(exc)
        if getattr(args, "json", False):
            print(json.dumps({"error": msg, "kind": type(exc).__name__}))
        print(f"mmcodec: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mmcodec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mmcodec models | head`): not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if os.environ.get("MMCODEC_DEBUG"):
            raise
        print(f"mmcodec: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
