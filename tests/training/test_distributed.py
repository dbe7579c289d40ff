"""Data-parallel training: 2 CPU processes (gloo) end where 1 process with the whole batch ends."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.distributed_worker import BLOCK, GLOBAL_BATCH, VOCAB, next_batch, train_tiny_gpt
from tfcourse.distributed import ProcessGroup, mean_across_processes, unwrap, world_size
from tfcourse.model import GPT, GPTConfig

REPOSITORY = Path(__file__).resolve().parents[2]


def torchrun(*arguments: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *arguments]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300)


def test_each_process_keeps_its_rows_of_the_global_batch():
    x, y = next_batch(3)
    shards = [ProcessGroup(rank, 2).shard(next_batch)(3) for rank in range(2)]
    assert torch.equal(torch.cat([shard[0] for shard in shards]), x)
    assert torch.equal(torch.cat([shard[1] for shard in shards]), y)
    assert shards[0][0].size(0) == GLOBAL_BATCH // 2


def test_uneven_split_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot be split evenly over 3 processes"):
        ProcessGroup(0, 3).shard(next_batch)(0)


def test_single_process_helpers_are_identities():
    value = torch.tensor(2.5)
    model = torch.nn.Linear(2, 2)
    assert world_size() == 1 and mean_across_processes(value) is value and unwrap(model) is model
    assert ProcessGroup().wrap(model) is model


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    launched = torchrun("-m", "tests.support.distributed_worker", str(tmp_path))
    assert launched.returncode == 0, launched.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    single = train_tiny_gpt(ProcessGroup())
    for name, expected in single.items():
        # The ranks average the same all-reduced gradients: bit-identical.
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        # Averaging two half-batch means differs from one whole-batch mean only in rounding
        # (~1e-16 in float64); after six Adam steps the weights agree to ~1e-14.
        torch.testing.assert_close(ranks[0][name], expected, atol=1e-12, rtol=0, msg=name)
    torch.manual_seed(0)
    initial = GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layers=2, n_heads=2, d_model=16)).double()
    moved = (ranks[0]["lm_head.weight"] - initial.lm_head.weight.detach()).abs().max()
    assert moved > 1e-3  # the comparison is not between untouched initial weights


@pytest.mark.slow
def test_train_command_runs_under_torchrun(tmp_path):
    out = tmp_path / "run"
    launched = torchrun("-m", "tfcourse.cli", "train", "reverse", "--steps", "4", "--batch-size", "16",
                        "--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--device", "cpu",
                        "--quiet", "--out", str(out))
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("reverse: ") == 1  # only rank 0 reports
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    assert (out / "checkpoint.pt").exists() and (out / "loss.png").exists()
