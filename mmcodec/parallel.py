"""Bulk compression with a process pool: `mmcodec compress DIR --workers N`.

Each worker process loads the model once and codes whole pairs; outputs are written
atomically (temporary file + rename), so an interrupted run never leaves a truncated `.mmc`
that a rerun would mistake for a finished pair. Sharding (`--shard i/n`) and skipping
finished pairs happen in the CLI before the jobs reach this module.

Workers are not forked from the caller: forking a process whose torch thread pool is
already running can deadlock. Where available a fork server, which has imported torch and
mmcodec but never run a model, forks them cheaply; elsewhere they are spawned.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from mmcodec.errors import BadInputError, MMCodecError
from mmcodec.files import atomic_write

Job = tuple[str, dict[str, Path], Path]   # (stem, {modality: image path}, output .mmc path)

_worker_codec = None  # one Codec per worker process, loaded by the pool initializer


def _write_output(path: Path, data: bytes) -> None:
    """Write a finished `.mmc` atomically; a failure is the user's (disk full, parent is a
    file), so it becomes a one-line BadInputError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None


def compress_pair(codec: Any, stem: str, paths: dict[str, Path], out: Path, effort: int = 0,
                  progress: bool = False) -> dict[str, Any]:
    """Code one pair with `codec` and write it atomically; the CLI's per-pair result dict
    (with the refinement report when `effort` > 0)."""
    from mmcodec.data.images import load_modality
    images = {m: load_modality(m, p) for m, p in paths.items()}
    report: dict[str, Any] = {}
    blob = codec.encode(images, effort=effort, report=report, progress=progress)[0]
    _write_output(Path(out), blob)
    pixels = max(im.height * im.width for im in images.values())  # as Container.info
    result = {"stem": stem, "output": str(out), "bytes": len(blob), "pair_bpp": 8.0 * len(blob) / pixels}
    if report:
        result["refinement"] = report
    return result


_worker_effort = 0


def _init_worker(model_name: str, quality: int, model_path: str | None, tile: int | None, effort: int = 0) -> None:
    global _worker_codec, _worker_effort
    _worker_effort = effort
    import torch
    torch.set_num_threads(1)  # the codec runs its model single-threaded anyway (bit-exact results)
    if model_path is not None:
        os.environ["MMCODEC_MODEL_PATH"] = model_path
    import mmcodec
    _worker_codec = mmcodec.load(model_name, quality=quality, tile=tile)


def _run_job(job: Job) -> dict[str, Any]:
    stem, paths, out = job
    try:
        return compress_pair(_worker_codec, stem, paths, out, _worker_effort)
    except MMCodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - carried back to the parent as one line
        raise RuntimeError(f"{stem}: {type(exc).__name__}: {exc}") from None


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mmcodec.codec", "mmcodec.parallel"])
        return ctx
    return multiprocessing.get_context("spawn")


def compress_parallel(model_name: str, quality: int, jobs: list[Job], workers: int,
                      progress: bool = True, tile: int | None = None, effort: int = 0) -> list[dict[str, Any]]:
    """Code every job with `workers` processes; results in job order.

    The first failing pair stops the run (pending pairs are cancelled, pairs already coded
    stay on disk, so a rerun continues where this one stopped) and its error is raised here.
    """
    from tqdm import tqdm
    if not jobs:
        return []
    workers = max(1, min(workers, len(jobs)))
    ctx = _context()
    results: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(model_name, quality, os.environ.get("MMCODEC_MODEL_PATH"), tile, effort)) as pool:
        futures: dict[Future, int] = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
        with tqdm(total=len(jobs), desc="compress", unit="pair", disable=not progress) as bar:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    exc = f.exception()
                    if exc is not None:
                        for p in pending:
                            p.cancel()
                        raise exc
                    results[futures[f]] = f.result()
                    bar.update(1)
    return [results[i] for i in range(len(jobs))]
