"""Data-parallel training on ``torch.distributed``: one process per device, gradients averaged.

Launched with ``torchrun``, every process runs the same program. ``torchrun`` tells each
one its ``RANK`` (0 .. ``WORLD_SIZE - 1``) and ``LOCAL_RANK`` (its index on this machine)
through environment variables, and the processes meet over gloo (CPU) or NCCL (GPU)::

    torchrun --nproc_per_node 2 -m tfcourse.cli train reverse            # 2 processes here
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m tfcourse.cli train lm

Every process builds the same global batch of ``B`` examples and keeps rows
``[rank * B / W, (rank + 1) * B / W)``; ``DistributedDataParallel`` averages the
gradients of the ``W`` shards during ``backward``:

    g = (1 / W) * sum_r grad L_r,    L_r = mean loss over the tokens of shard r.

When every shard holds the same number of scored tokens, ``g`` is exactly the gradient of
the mean loss over the global batch, so ``W`` processes take the same steps as one
process with the whole batch. (Tasks whose examples score different numbers of tokens,
such as addition, weigh each shard equally instead of each token.) Started without
``torchrun``, the same code runs as a single process.

Each process, distributed or not, picks its device with :func:`resolve_device`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from tfcourse.settings import DEVICES

Batch = tuple[Tensor, ...]


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands: its ``rank`` among ``world_size`` and its ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` (already on ``device``) wrapped to average gradients across processes."""
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def shard(self, next_batch: Callable[[int], Batch]) -> Callable[[int], Batch]:
        """``next_batch`` restricted to this process's rows of each global batch."""
        if self.world_size == 1:
            return next_batch

        def shard_batch(step: int) -> Batch:
            batch = next_batch(step)
            rows = batch[0].size(0)
            if rows % self.world_size:
                raise ValueError(f"a global batch of {rows} examples cannot be split evenly over "
                                 f"{self.world_size} processes; choose a batch size that is a multiple "
                                 f"of {self.world_size}")
            size = rows // self.world_size
            return tuple(tensor[self.rank * size:(self.rank + 1) * size] for tensor in batch)

        return shard_batch


def _launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def resolve_device(device: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """The device to run on; every command, the demo, the experiments and decoding choose with this.

    ``None``: ``cuda:<local_rank>`` when CUDA is available, else the CPU. ``"cuda"``:
    ``cuda:<local_rank>``, or a ``ValueError`` when no CUDA device is available. ``"cpu"``: the CPU.
    A ``torch.device`` is already chosen and comes back as it is.
    """
    if isinstance(device, torch.device):
        return device
    if device not in (None, *DEVICES):
        raise ValueError(f"unknown device {device!r}; expected {' or '.join(map(repr, DEVICES))}")
    use_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use 'cpu'")
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


@contextmanager
def process_group(device: str | None = None) -> Iterator[ProcessGroup]:
    """Join the processes started by ``torchrun`` (or run alone) for the duration of the block.

    Uses NCCL on CUDA and gloo on CPU; each process on a machine takes the GPU of its
    ``LOCAL_RANK``. The group is left again at the end of the block.
    """
    if not _launched_by_torchrun():
        yield ProcessGroup(device=resolve_device(device))
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    try:
        yield ProcessGroup(dist.get_rank(), dist.get_world_size(), chosen)
    finally:
        dist.destroy_process_group()


# --------------------------------------------- helpers for code that may run distributed


def world_size() -> int:
    """Number of processes training together (1 outside ``torchrun``)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, and when not distributed."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def mean_across_processes(value: Tensor) -> Tensor:
    """The mean of a tensor over all processes (itself when not distributed)."""
    if world_size() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total / world_size()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
