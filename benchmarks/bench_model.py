"""GPT speed, measured side by side with a baseline in the same run.

1. Training throughput: tokens/s of whole training steps (forward, backward, AdamW update,
   as ``tfcourse.training.train`` takes them) of ``GPT`` (fused and explicit-math
   attention) against the same model built from ``nn.TransformerEncoderLayer`` with a
   causal mask. Ratio > 1 means ``GPT`` is faster.
2. Generation of 256 tokens with and without the KV cache.

Run: ``python -m benchmarks.bench_model`` (add ``--quick`` for a short run). GPU figures
are printed too when CUDA is available.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.timing import compare
from tfcourse.generation import generate
from tfcourse.masks import causal_mask
from tfcourse.model import GPT, GPTConfig
from tfcourse.training import configure_optimizer


class TorchLayersGPT(nn.Module):
    """The baseline: a GPT of the same sizes built from PyTorch's own Transformer layers."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.block_size, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, 4 * c.d_model, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, norm=nn.LayerNorm(c.d_model),
                                             enable_nested_tensor=False)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        mask = ~causal_mask(idx.size(1), idx.device)  # PyTorch's boolean masks mean "may not attend"
        return self.lm_head(self.encoder(x, mask=mask, is_causal=True))


def training_step(model: nn.Module, idx: torch.Tensor) -> callable:
    optimizer = configure_optimizer(model, lr=1e-4, weight_decay=0.01)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(idx)
        F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
        optimizer.step()

    return step


def bench_training(device: torch.device, config: GPTConfig, batch: int, rounds: int, repeats: int) -> None:
    idx = torch.randint(0, config.vocab_size, (batch, config.block_size), device=device)
    models = {"torch layers": TorchLayersGPT(config), "GPT fused": GPT(config),
              "GPT math": GPT(GPTConfig(**{**vars(config), "fused": False}))}
    times = compare({name: training_step(m.to(device).train(), idx) for name, m in models.items()},
                    device, rounds, repeats)
    tokens = idx.numel()
    print(f"\n[{device}] training steps, batch {batch} x {config.block_size} tokens, "
          f"d_model {config.d_model}, {config.n_layers} layers")
    for name, seconds in times.items():
        ratio = times["torch layers"] / seconds
        print(f"  {name:<13} {tokens / seconds:>12,.0f} tokens/s   {ratio:.2f}x torch layers")


def bench_generation(device: torch.device, config: GPTConfig, new_tokens: int, rounds: int) -> None:
    model = GPT(config).to(device).eval()
    prompt = torch.randint(0, config.vocab_size, (1, 8), device=device)
    runs = {f"use_cache={flag}": (lambda flag=flag: generate(model, prompt, new_tokens, temperature=0,
                                                             use_cache=flag))
            for flag in (True, False)}
    same = torch.equal(runs["use_cache=True"](), runs["use_cache=False"]())
    times = compare(runs, device, rounds, repeats=1)
    speedup = times["use_cache=False"] / times["use_cache=True"]
    print(f"\n[{device}] greedy generation of {new_tokens} tokens, same tokens: {same}")
    for name, seconds in times.items():
        print(f"  {name:<15} {seconds * 1000:>9.1f} ms   {new_tokens / seconds:>8.0f} tokens/s")
    print(f"  KV cache speed-up: {speedup:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rounds, repeats = (2, 3) if args.quick else (5, 5)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        torch.manual_seed(0)
        big = device.type == "cuda"
        train_config = GPTConfig(vocab_size=512, block_size=256 if big else 128, n_layers=4,
                                 n_heads=8 if big else 4, d_model=512 if big else 128)
        bench_training(device, train_config, batch=32 if big else 8, rounds=rounds, repeats=repeats)
        gen_config = GPTConfig(vocab_size=512, block_size=512, n_layers=4, n_heads=4, d_model=256)
        bench_generation(device, gen_config, new_tokens=256, rounds=rounds)


if __name__ == "__main__":
    main()
