"""Data-parallel extraction on an existing engine: ``torchrun`` or ``accelerate launch``.

Both launchers start N copies of a command and tell each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). llmct reads only
that: under a launcher, an experiment's extraction takes shard ``RANK/WORLD_SIZE`` of the items
(the same split as ``--shard i/n``, each process writing its own ``shard-i-of-n/`` store
atomically), every process waits at a ``torch.distributed`` barrier (gloo on CPU, NCCL on CUDA),
and only the main process (rank 0) merges the shards and runs the analysis; the others exit
with status 0. Without a launcher nothing changes (one process, no process group).

    torchrun --nproc_per_node 2 experiments/01_extract/run.py          # 2 CPU processes
    accelerate launch --num_processes 8 experiments/02_probes/run.py   # 8 GPUs, one each

On CUDA each process puts its model on ``cuda:LOCAL_RANK`` unless ``--device`` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones (``size`` 1 without a launcher)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """``(rank, size)`` under a launcher of several processes, else None."""
        return (self.rank, self.size) if self.size > 1 else None


def world() -> World:
    """The launcher's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (defaults: one process).

    Raises ``ValueError`` for values that are not integers or a rank outside ``0..size-1``."""
    env = os.environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from None
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
    return World(rank, size, local)


def process_device(device: str | None) -> str | None:
    """``cuda:LOCAL_RANK`` for an unset or ``auto``/``cuda`` device when several processes share
    a CUDA machine; otherwise ``device`` unchanged."""
    w = world()
    if w.size > 1 and device in (None, "auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{w.local_rank % max(torch.cuda.device_count(), 1)}"
    return device


def barrier() -> None:
    """Wait until every launched process arrives (no-op for one process). Initialises the
    default process group on first use: NCCL when CUDA is available, else gloo."""
    if world().size <= 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


__all__ = ["World", "barrier", "process_device", "world"]
