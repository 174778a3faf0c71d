"""Data-parallel training under `torchrun` (DistributedDataParallel).

    torchrun --standalone --nproc_per_node 2 -m mmcodec train --config configs/ir-vi-separate.json

Each process trains a replica on its own random crops; DDP averages the gradients so every
replica takes the same optimiser step. Choices:
- Backend: gloo on CPU, nccl on GPU (one GPU per process, `cuda:<LOCAL_RANK>`).
- Data: the training data are random crops of pairs held in memory, so instead of a
  DistributedSampler each rank draws from its own seed (`Distributed.seed`); rank 0 keeps
  the single-process seed, so a 1-process run is unchanged.
- Batch: `batch` in the config is the global batch, split evenly over the ranks, so a
  recipe means the same optimisation on 1 or N processes.
- The entropy bottlenecks' `quantiles` are trained by the auxiliary loss outside DDP's
  forward; DDP ignores them and their gradients are averaged explicitly.
- Only rank 0 writes: log, checkpoints, exported model. Every rank reads the checkpoint on
  resume. Decisions that end the loop (CPU budget) use values agreed by all ranks, so no
  rank waits forever in a collective that the others have left.
- At the end the ranks compare a hash of their weights; a mismatch is an error.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn as nn

from mmcodec.errors import BadInputError

_RANK_SEED_STRIDE = 1_000_003   # a prime: rank seeds never collide with base seeds + step counts


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, base: int) -> int:
        """This rank's data seed (rank 0 keeps `base`)."""
        return base + _RANK_SEED_STRIDE * self.rank

    def local_batch(self, batch: int) -> int:
        if batch % self.world_size:
            raise BadInputError(f"batch {batch} does not split evenly over {self.world_size} processes")
        return batch // self.world_size

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call in the training step: DDP around `model`, or `model` itself."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        aux = [n for n, _ in model.named_parameters() if n.endswith(".quantiles")]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, aux)
        for name, p in model.named_parameters():  # DDP syncs the rest from rank 0 itself
            if name in aux:
                dist.broadcast(p.data, src=0)
        # Unused-parameter search: some architectures leave modules out of a stage's forward.
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       broadcast_buffers=False, find_unused_parameters=True)

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return float(t.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        if not self.enabled:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def replica_hashes(self, model: nn.Module) -> list[str]:
        """SHA-256 (16 hex digits) of every rank's parameters and buffers, in rank order."""
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        mine = h.hexdigest()[:16]
        if not self.enabled:
            return [mine]
        gathered: list[str | None] = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        return [str(g) for g in gathered]

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def setup(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment; a plain run gets a
    one-process `Distributed` that does nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(device=torch.device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return Distributed(rank, world, local_rank, dev, backend)
