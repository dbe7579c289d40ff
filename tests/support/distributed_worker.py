"""Trains a tiny GPT data-parallel; run by ``tests/training/test_distributed.py`` under ``torchrun``.

``python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.support.distributed_worker OUT``
saves each rank's final weights to ``OUT/rank<r>.pt``. The same :func:`train_tiny_gpt`
runs in the test process as the single-process reference.
"""

import sys
from pathlib import Path

import torch

from tfcourse.distributed import ProcessGroup, process_group
from tfcourse.gpt_tasks import next_token_loss
from tfcourse.model import GPT, GPTConfig
from tfcourse.training import train

GLOBAL_BATCH, BLOCK, VOCAB, STEPS = 8, 12, 17, 6


def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of the 0-based ``step``: random tokens, each row scored at every position."""
    tokens = torch.randint(0, VOCAB, (GLOBAL_BATCH, BLOCK + 1), generator=torch.Generator().manual_seed(step))
    return tokens[:, :-1], tokens[:, 1:]


def train_tiny_gpt(group: ProcessGroup) -> dict[str, torch.Tensor]:
    """Float64 weights after ``STEPS`` updates (clipping, weight decay and warm-up included)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layers=2, n_heads=2, d_model=16)).double()
    train(group.wrap(model), group.shard(next_batch), next_token_loss, steps=STEPS, lr=1e-2, warmup=2,
          grad_clip=0.5, device="cpu", progress=False)
    return model.state_dict()


if __name__ == "__main__":
    with process_group("cpu") as process:
        torch.save(train_tiny_gpt(process), Path(sys.argv[1]) / f"rank{process.rank}.pt")
