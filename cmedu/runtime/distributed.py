"""Several processes, one training run: the process-group helpers behind ``torchrun``.

``torchrun --nproc_per_node W -m cmedu train ...`` starts W copies of the same command
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. Each process:

* joins one process group (NCCL on CUDA, Gloo on the CPU) and uses GPU ``LOCAL_RANK``;
* draws its own share of the batch, ``batch_size / W`` examples, from a generator seeded
  with ``seed + rank`` (so the W shares differ), and its own dropout masks;
* wraps the network in ``DistributedDataParallel``, which averages the gradients, so every
  process holds the same parameters (and the same target network and EMA) after each step;
* leaves the checkpoint to rank 0: the others wait at a barrier while it is written.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) every helper here is a
no-op and the training loop is the plain single-process one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

# torchrun's environment variables and their values for a single process.
ENV = (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the run."""

    rank: int = 0  # 0..world_size-1; rank 0 writes checkpoints and shows progress
    world_size: int = 1  # number of processes
    local_rank: int = 0  # index of this process on its machine (its GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The process's place from an initialised group, else from torchrun's variables."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Dist(dist.get_rank(), dist.get_world_size(), local)
    rank, world, local = (int(os.environ.get(k, d)) for k, d in ENV)
    return Dist(rank, world, local)


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group if this is one of several processes; pick this rank's device.

    Parameters
    ----------
    device : the device asked for. With several processes on CUDA it becomes
        ``cuda:LOCAL_RANK``; the backend is NCCL there and Gloo on the CPU.

    Returns
    -------
    (Dist, torch.device)
    """
    where = from_env()
    if where.world_size == 1:
        return where, device
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"several processes need CUDA or the CPU, not {device.type!r}")
    if device.type == "cuda":
        device = torch.device("cuda", where.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return where, device


def cleanup() -> None:
    """Leave the process group (if any): call once at the end of a script."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait until every process gets here."""
    if _active():
        dist.barrier()


def mean(x: Tensor) -> Tensor:
    """The mean of ``x`` over all processes (``x`` itself for one process)."""
    if not _active():
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / dist.get_world_size()


def gather(obj) -> list:
    """Every process's ``obj`` (picklable), as a list indexed by rank."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def main_first():
    """Run the block on rank 0 first, then on the others (e.g. a dataset download).

    Rank 0 releases the others even when its block raises, so no process is left waiting.
    """
    is_main = not _active() or dist.get_rank() == 0
    if not is_main:
        barrier()
    try:
        yield
    finally:
        if is_main:
            barrier()


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """batch_size / world_size: ``--batch-size`` is the global batch of one optimiser step."""
    if batch_size % world_size:
        raise ValueError(
            f"--batch-size {batch_size} does not split over {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return batch_size // world_size
