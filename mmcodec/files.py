"""Atomic file output, the one way mmcodec writes a file that someone may read back.

A reader (a rerun that skips finished pairs, a resumed training run, `mmcodec models`) sees
either the previous file or the whole new one, never a truncated file, even after a crash
or a power cut: the data is fsynced before the rename and the directory after it. The
temporary file sits next to the target (same filesystem, so the rename is atomic) and is
removed on any failure. Standard library only, so that every layer can use it.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "atomic_write"]


def _temporary_name(path: Path) -> Path:
    # Hidden, and unique per process and thread so that parallel writers never share one.
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # a read-only descriptor is enough to fsync on POSIX
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform or filesystem.
    with contextlib.suppress(OSError):
        _fsync(directory)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; when the block ends without an exception,
    the file written there becomes `path` (fsync, rename, fsync of the folder). On any
    exception the temporary file is removed and the exception propagates; `path` is then
    left as it was. For writers that need a path (torch.save, safetensors, PIL)."""
    target = Path(path)
    tmp = _temporary_name(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically and durably (see `atomic_output`). Raises OSError;
    callers that face users turn it into their own error."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
