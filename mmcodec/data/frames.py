"""Frame sequences in and out: a folder of frames (sorted by name) or a video file
(MP4/MKV/AVI/...), decoded by the ffmpeg binary that imageio-ffmpeg bundles, through a pipe.
Plain I/O, so it sits in the data layer: the video codec, the video bench and the image
trainer's single-image sources (frames of video clips) all read through it.

Frames are uint8 arrays: visible (H, W, 3), infrared (H, W). Every failure is a one-line
BadInputError (exit 2 in the CLI).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmcodec.data.images import read_image, write_image
from mmcodec.errors import BadInputError

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".y4m")


def frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)


def _as_modality(arr: np.ndarray, modality: str, where: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise BadInputError(f"{where}: video coding takes 8-bit frames, got {arr.dtype}")
    if modality == "ir":
        if arr.ndim == 3:
            if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
                raise BadInputError(f"{where}: infrared frame must be grey, got colour")
            arr = arr[..., 0]
        return np.ascontiguousarray(arr)
    if arr.ndim == 2:     # a grey visible frame is coded as colour
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _video_frames(path: Path, modality: str, limit: int | None) -> Iterator[np.ndarray]:
    import imageio_ffmpeg
    pix_fmt = "gray" if modality == "ir" else "rgb24"
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt=pix_fmt, bpp=1 if modality == "ir" else 3)
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise BadInputError(f"cannot read video {path}: {' '.join(str(exc).split())[:200]}") from None
    w, h = meta["size"]
    channels = 1 if modality == "ir" else 3
    count = 0
    try:
        for raw in reader:
            if limit is not None and count >= limit:
                break
            frame = np.frombuffer(raw, np.uint8)
            if frame.size != w * h * channels:
                raise BadInputError(f"cannot read video {path}: frame {count} has {frame.size} bytes")
            yield frame.reshape((h, w) if channels == 1 else (h, w, 3)).copy()
            count += 1
    except (OSError, RuntimeError) as exc:
        raise BadInputError(f"cannot read video {path} at frame {count}: {' '.join(str(exc).split())[:200]}") from None
    finally:
        reader.close()
    if count == 0:
        raise BadInputError(f"video {path} has no frames")


def read_sequence(source: str | os.PathLike, modality: str, limit: int | None = None,
                  every: int = 1) -> list[np.ndarray]:
    """All frames (the first `limit`; of those every `every`-th, from the first) of a folder of
    frames or a video file, as uint8 arrays of one size."""
    path = Path(source)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise BadInputError(f"no frames ({'/'.join(FRAME_SUFFIXES)}) in {path}")
        frames = [_as_modality(read_image(f), modality, str(f)) for f in files[:limit][::every]]
    elif path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise BadInputError(f"not a video file or a folder of frames: {path}")
        frames = [_as_modality(f, modality, str(path))
                  for i, f in enumerate(_video_frames(path, modality, limit)) if i % every == 0]
    else:
        raise BadInputError(f"not found: {path}")
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) != 1:
        raise BadInputError(f"{path}: frames differ in size ({', '.join(f'{w}x{h}' for h, w in sorted(shapes))})")
    return frames


def read_pair_sequences(rgb: str | os.PathLike, ir: str | os.PathLike,
                        limit: int | None = None) -> dict[str, list[np.ndarray]]:
    """Both sequences of a pair; the same frame count and size or a one-line error."""
    seqs = {"ir": read_sequence(ir, "ir", limit), "rgb": read_sequence(rgb, "rgb", limit)}
    if len(seqs["ir"]) != len(seqs["rgb"]):
        raise BadInputError(f"visible has {len(seqs['rgb'])} frames, infrared {len(seqs['ir'])}: "
                            "the sequences must have the same frame count")
    (vh, vw), (ih, iw) = seqs["rgb"][0].shape[:2], seqs["ir"][0].shape[:2]
    if (vh, vw) != (ih, iw):
        raise BadInputError(f"visible frames are {vw}x{vh}, infrared {iw}x{ih}: the sequences must have the same size")
    return seqs


def write_frames(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    """Write frames as folder/0000.png, 0001.png, ... (each atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        path = folder / f"{i:04d}.png"
        write_image(path, f)
        paths.append(path)
    return paths
