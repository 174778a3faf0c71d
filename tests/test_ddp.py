"""Data-parallel training: `mmcodec train` under torchrun with 2 CPU processes (gloo).

Both replicas must hold identical weights after a few steps (checked by the trainer itself,
and here against the checkpoint rank 0 wrote), only rank 0 writes, and resume works.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmcodec.train.distributed import Distributed, setup

from conftest import TINY, TINY_LAMBDAS


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    """Same digest as `Distributed.replica_hashes`."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _torchrun(cfg_path: Path, *extra: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "mmcodec", "train", "--json", "--config", str(cfg_path), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_two_cpu_processes_train_identical_replicas(synthetic_pair_dir, tmp_path):
    out = tmp_path / "run"
    cfg = {"name": "ir-vi/ddp-tiny", "arch": "separate", "kwargs": {"modalities": ["rgb", "ir"], **TINY},
           "modalities": ["rgb", "ir"], "lambdas": TINY_LAMBDAS, "train_split": str(synthetic_pair_dir),
           "steps": 3, "batch": 4, "crop": 64, "warmup": 1, "threads": 1, "log_every": 1,
           "checkpoint_every": 2, "out": str(out)}
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    r = _torchrun(cfg_path)
    assert r.returncode == 0, r.stderr[-3000:]

    budget = json.loads((out / "budget.json").read_text())
    assert budget["steps"] == 3 and budget["distributed"]["world_size"] == 2
    assert budget["distributed"]["backend"] == "gloo"
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 3
    # both ranks' weight hashes (gathered by the trainer) equal the weights rank 0 checkpointed
    assert budget["distributed"]["replica_weights"] == [_weights_hash(ckpt["model"])] * 2
    # and training moved the weights away from the common initialisation
    from mmcodec.models.registry import build_model
    torch.manual_seed(0)
    init = build_model("separate", cfg["kwargs"]).state_dict()
    assert _weights_hash(init) != budget["distributed"]["replica_weights"][0]
    # only rank 0 wrote: one log with a header and one row per step, one exported model
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("step,")
    assert sorted(p.name for p in (out / "model").iterdir()) == ["ir-vi__ddp-tiny.json",
                                                                 "ir-vi__ddp-tiny.safetensors"]

    # resume: two more steps from the checkpoint, again in sync
    cfg_path.write_text(json.dumps({**cfg, "steps": 5}))
    r = _torchrun(cfg_path, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    budget = json.loads((out / "budget.json").read_text())
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert budget["steps"] == 5 and ckpt["step"] == 5
    assert budget["distributed"]["replica_weights"] == [_weights_hash(ckpt["model"])] * 2
    assert [int(r.split(",")[0]) for r in (out / "log.csv").read_text().splitlines()[1:]] == [1, 2, 3, 4, 5]


def test_single_process_is_unchanged():
    d = setup("cpu")
    assert not d.enabled and d.is_main and d.seed(7) == 7 and d.local_batch(8) == 8
    model = torch.nn.Linear(2, 2)
    assert d.wrap(model) is model
    assert d.sum(1.5) == 1.5 and d.mean({"a": 2.0}) == {"a": 2.0}


def test_rank_seeds_differ_and_batch_splits_evenly():
    ranks = [Distributed(rank=r, world_size=4) for r in range(4)]
    assert len({d.seed(0) for d in ranks}) == 4 and ranks[0].seed(5) == 5
    assert ranks[1].local_batch(8) == 2
    from mmcodec.errors import BadInputError
    with pytest.raises(BadInputError, match="split evenly"):
        ranks[1].local_batch(6)
