"""The benchmark's dataset: the pairs' reference images, identified by their files' content."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.errors import BadInputError


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
