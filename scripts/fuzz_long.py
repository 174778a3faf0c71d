#!/usr/bin/env python
"""Long decoder fuzz run (benchmark for issue 7; the CI version is tests/test_fuzz.py).

    .venv/bin/python scripts/fuzz_long.py --cases 10000 --seed 0 --report results/fuzz_long.json

Damages valid .mmc streams (bit flips, overwrites, insertions, deletions, truncations,
splices, random bytes; each with or without a recomputed CRC; well-formed containers with
damaged entropy-coded parts or changed geometry) and decodes every case with the Python API.
Each case must end in a one-line BitstreamError within the time bound, or decode to exactly
the original image. Cases run in a child process so that a crash (e.g. a segfault in native
code) or a hang is counted, not fatal: the parent restarts the child after the failing case.

By default the models are tiny untrained ones installed in a temporary directory (fast);
--model-dir and --models fuzz installed models instead.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = ("flip", "overwrite", "insert", "delete", "truncate", "splice", "random", "magic_random",
             "payload", "geometry")


# -- corpus -----------------------------------------------------------------------------------
def _smooth(h: int, w: int, channels: int, seed: int, bits: int = 8):
    import numpy as np
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [0.5 + 0.25 * np.sin(rng.uniform(0.01, 0.08) * xx + rng.uniform(0, 6)) +
              0.2 * np.cos(rng.uniform(0.01, 0.08) * yy) for _ in range(channels)]
    arr = np.clip(np.stack(planes, -1), 0, 1) * (255 if bits == 8 else 60000)
    arr = np.rint(arr).astype(np.uint8 if bits == 8 else np.uint16)
    return arr[..., 0] if channels == 1 else arr


def install_tiny_models(directory: Path) -> list[str]:
    import torch
    from mmcodec.models.registry import install_model
    from mmcodec.models.separate import SeparateCoding
    torch.manual_seed(0)
    for name, mods in (("ir-vi/tiny", ["rgb", "ir"]), ("rgb-d/tiny", ["rgb", "depth"])):
        kwargs = {"modalities": mods, "N": 16, "M": 24, "num_rates": 2}
        install_model(directory, name, "separate", kwargs, mods, [0.002, 0.01], SeparateCoding(**kwargs))
    return ["ir-vi/tiny", "rgb-d/tiny"]


def build_corpus(models: list[str]) -> list[bytes]:
    import mmcodec
    blobs = []
    for i, name in enumerate(models):
        codec = mmcodec.load(name)
        second = [m for m in codec.modalities if m != "rgb"][0]
        for q in codec.installed.qualities[:2]:
            blobs.append(codec.compress(**{"rgb": _smooth(64, 80, 3, i), second: _smooth(64, 80, 1, i + 1)},
                                        quality=q))
        blobs.append(codec.compress(**{"rgb": _smooth(70, 64, 3, i + 2),
                                       second: _smooth(70, 64, 1, i + 3, bits=16)}))
        # a tiled stream (format version 2): 2 x 2 tiles of 64 px
        blobs.append(mmcodec.load(name, tile=64).compress(**{"rgb": _smooth(120, 100, 3, i + 4),
                                                             second: _smooth(120, 100, 1, i + 5)}))
    return blobs


# -- damage -----------------------------------------------------------------------------------
def with_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]) & 0xFFFFFFFF) if len(data) >= 4 else data


def damage_bytes(rng: random.Random, op: str, data: bytes, other: bytes) -> bytes:
    n = len(data)
    if op == "flip":
        b = bytearray(data)
        for _ in range(rng.choice((1, 1, 1, 2, 8))):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == "overwrite":
        pos, chunk = rng.randrange(n), rng.randbytes(rng.randint(1, 16))
        return data[:pos] + chunk + data[pos + len(chunk):]
    if op == "insert":
        pos = rng.randrange(n + 1)
        return data[:pos] + rng.randbytes(rng.randint(1, 32)) + data[pos:]
    if op == "delete":
        pos = rng.randrange(n)
        return data[:pos] + data[pos + rng.randint(1, 64):]
    if op == "truncate":
        return data[:rng.randrange(n)]
    if op == "splice":
        return data[:rng.randrange(n)] + other[rng.randrange(len(other)):]
    if op == "random":
        return rng.randbytes(rng.choice((0, 1, 4, 12, 50, 200, 2000)))
    if op == "magic_random":
        return b"\x89MMC\x00\x01" + rng.randbytes(rng.choice((2, 10, 60, 300)))
    raise ValueError(op)


def damage_container(rng: random.Random, op: str, data: bytes) -> bytes:
    """Well-formed containers (valid header and CRC) with damaged parts or changed geometry."""
    from mmcodec.bitstream import pack, unpack
    c = unpack(data)
    if op == "payload":
        m = rng.choice(list(c.streams))
        k = rng.randrange(len(c.streams[m]))
        part = bytearray(c.streams[m][k] or b"\x00")
        how = rng.choice(("flip", "truncate", "random", "extend"))
        if how == "flip":
            part[rng.randrange(len(part))] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            part = part[:rng.randrange(len(part))]
        elif how == "random":
            part = bytearray(rng.randbytes(rng.randint(0, 64)))
        else:
            part += rng.randbytes(rng.randint(1, 64))
        c.streams[m][k] = bytes(part)
    else:  # geometry: sizes, channels, range or quality change, payload unchanged
        what = rng.choice(("size", "size", "channels", "range", "quality", "crc"))
        for info in c.modalities:
            if what == "size":
                info.height, info.width = rng.choice((1, 17, 64, 100, 333)), rng.choice((1, 33, 64, 200, 512))
            elif what == "channels":
                info.channels = 4 - info.channels
            elif what == "range":
                info.value_range = (0, rng.choice((1, 255, 1023, 65535)))
            elif what == "crc":
                info.recon_crc ^= 1 << rng.randrange(32)
        if what == "quality":
            c.quality = rng.randrange(256)
    return pack(c)


def make_case(seed: int, index: int, corpus: list[bytes]) -> tuple[str, bool, bytes]:
    rng = random.Random(seed * 1_000_003 + index)
    op = OPERATORS[index % len(OPERATORS)]
    data = corpus[rng.randrange(len(corpus))]
    if op in ("payload", "geometry"):
        return op, True, damage_container(rng, op, data)
    fix_crc = rng.random() < 0.5
    damaged = damage_bytes(rng, op, data, corpus[rng.randrange(len(corpus))])
    return op, fix_crc, with_crc(damaged) if fix_crc else damaged


# -- worker: runs cases, one JSON line each -----------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import mmcodec
    from mmcodec.errors import BitstreamError, MMCodecError
    corpus = [bytes.fromhex(h) for h in json.loads(Path(args.corpus).read_text())]
    originals = [mmcodec.decompress(b) for b in corpus]
    for i in range(args.start, args.cases):
        op, fixed, data = make_case(args.seed, i, corpus)
        t0 = time.perf_counter()
        try:
            out = mmcodec.decompress(data)
        except MMCodecError as exc:
            msg = str(exc)
            bad = not isinstance(exc, BitstreamError) or "\n" in msg or not msg
            outcome = ("WRONG-CLASS " if bad else "") + f"{type(exc).__name__}: {msg}"
        except Exception as exc:  # noqa: BLE001 - an unexpected exception is a finding
            outcome = f"UNEXPECTED {type(exc).__name__}: {exc}"
        else:
            same = any(out.keys() == ref.keys() and all(np.array_equal(out[m], ref[m]) for m in out)
                       for ref in originals)
            outcome = "accepted: identical to an original" if same else "SILENT-WRONG-IMAGE"
        print(json.dumps({"i": i, "op": op, "crc_fixed": fixed, "outcome": outcome,
                          "seconds": round(time.perf_counter() - t0, 4)}), flush=True)


# -- parent: supervises the worker, aggregates ---------------------------------------------------
def _family(outcome: str) -> str:
    """Outcome with numbers and paths blanked, to count message kinds."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'…'", outcome))[:140]


def supervise(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="mmcodec-fuzz-"))
    if args.model_dir:
        env["MMCODEC_MODEL_PATH"] = args.model_dir
        os.environ["MMCODEC_MODEL_PATH"] = args.model_dir
        models = args.models.split(",")
    else:
        env["MMCODEC_MODEL_PATH"] = str(tmp / "models")
        os.environ["MMCODEC_MODEL_PATH"] = str(tmp / "models")
        sys.path.insert(0, str(ROOT))
        models = install_tiny_models(tmp / "models")
    corpus = build_corpus(models)
    (tmp / "corpus.json").write_text(json.dumps([b.hex() for b in corpus]))

    results: list[dict] = []
    start, t_start = 0, time.time()
    while start < args.cases:
        cmd = [sys.executable, __file__, "--worker", "--start", str(start), "--cases", str(args.cases),
               "--seed", str(args.seed), "--corpus", str(tmp / "corpus.json")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        next_index, ready_deadline = start, time.time() + 120  # the first case waits for imports
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                rec = json.loads(line)
                results.append(rec)
                next_index = rec["i"] + 1
                ready_deadline = time.time() + args.case_timeout
                if args.progress and next_index % 500 == 0:
                    print(f"{next_index}/{args.cases} cases, {time.time() - t_start:.0f} s", file=sys.stderr)
            elif time.time() > ready_deadline:
                proc.kill()
                break
        code = proc.wait()
        if next_index >= args.cases:
            break
        op, fixed, _ = make_case(args.seed, next_index, corpus)
        kind = "HANG" if code in (-9, None) else f"CRASH (exit {code})"
        results.append({"i": next_index, "op": op, "crc_fixed": fixed, "outcome": kind, "seconds": None})
        start = next_index + 1

    by_outcome = Counter(_family(r["outcome"]) for r in results)
    by_op: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_op[r["op"]][_family(r["outcome"]).split(":")[0]] += 1
    failures = [r for r in results if r["outcome"].startswith(("WRONG-CLASS", "UNEXPECTED", "SILENT", "CRASH",
                                                               "HANG"))
                or (r["seconds"] or 0) > args.case_timeout]
    times = [r["seconds"] for r in results if r["seconds"] is not None]
    return {"cases": len(results), "seed": args.seed, "models": models, "corpus_streams": len(corpus),
            "failures": len(failures), "failure_examples": failures[:20],
            "max_seconds_per_case": max(times), "mean_seconds_per_case": round(sum(times) / len(times), 4),
            "wall_seconds": round(time.time() - t_start, 1), "outcomes": dict(by_outcome.most_common()),
            "by_operator": {k: dict(v) for k, v in sorted(by_op.items())}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case-timeout", type=float, default=10.0, help="seconds a single case may take")
    p.add_argument("--model-dir", help="fuzz models installed here instead of tiny untrained ones")
    p.add_argument("--models", default="", help="comma-separated model names (with --model-dir)")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    report = supervise(args)
    text = json.dumps(report, indent=2)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text + "\n")
    print(text)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
