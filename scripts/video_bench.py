"""Issue 25: the video benchmark (mmcodec.bench.video) with its defaults; same as
`mmcodec bench --video --data video_ir_vi/m3svd_frames --frames 8 --gop 8 --out results/video_bench`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmcodec.bench.video import VIDEO_CODECS, run_video  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="video_ir_vi/m3svd_frames")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--gop", type=int, default=8)
    ap.add_argument("--out", default="results/video_bench")
    ap.add_argument("--sequences", nargs="*")
    ap.add_argument("--codecs", default=VIDEO_CODECS)
    args = ap.parse_args()
    print(run_video(args.data, Path(args.out), args.frames, args.gop, args.codecs, args.sequences))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
