"""Make a vi/ + ir/ pair folder from Kodak (or any colour folder) so that `mmcodec bench` can measure an
ir-vi model's visible codec alone: vi/ links to the originals, ir/ holds grey copies (ignore its column).

    .venv/bin/python scripts/kodak_pairs.py ../shared/data/natural/kodak24 /tmp/kodakpair
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def main(src: str, dst: str) -> None:
    out = Path(dst)
    (out / "vi").mkdir(parents=True, exist_ok=True)
    (out / "ir").mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(src).glob("*.png")):
        link = out / "vi" / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
        Image.open(f).convert("L").save(out / "ir" / f.name)


if __name__ == "__main__":
    main(*sys.argv[1:3])
