"""A short demonstration: train two small models on this machine and decode with each.

1. An encoder-decoder learns to reverse sequences of symbols (seconds on a CPU);
   greedy decoding and beam search then reverse sequences it has never seen.
2. A character-level GPT trains briefly on the offline corpus and continues a prompt
   with greedy, temperature, top-k and nucleus sampling, with and without the KV cache.
"""

from __future__ import annotations

import time

import torch

from tfcourse.data import BOS_ID, EOS_ID, FIRST_SYMBOL_ID
from tfcourse.distributed import resolve_device
from tfcourse.generation import beam_search, generate, seq2seq_step
from tfcourse.gpt_tasks import LanguageModelTask, gpt_config, next_token_loss
from tfcourse.model import GPT, count_parameters
from tfcourse.tasks import Seq2SeqTask, train_seq2seq
from tfcourse.training import seeded_batches, train

PROMPT = "The function returns "
CORPUS_CHARS = 400_000  # of the offline corpus: the first 90% to train on, the rest held out for validation


def demo_reversal(steps: int, device: torch.device) -> None:
    """Train on reversal, then reverse three unseen sequences with beam search."""
    task = Seq2SeqTask("reverse", seq_len=8, n_symbols=10)
    print(f"\n== Sequence reversal: {task.seq_len} symbols from {task.n_symbols}, {steps} steps ==")
    model, result = train_seq2seq(task, steps=steps, device=device)
    print(f"{count_parameters(model):,} parameters, {result.seconds:.1f} s, "
          f"exact match on 500 unseen sequences: {result.evals[-1]['exact_match']:.1%}")
    src, _ = task.batch(3, torch.Generator().manual_seed(99), device)
    for row in src:
        step = seq2seq_step(model, row[None])
        decoded = beam_search(step, torch.tensor([BOS_ID], device=device), beam_width=3,
                              max_new_tokens=task.seq_len + 1, eos_id=EOS_ID)
        print(f"  {_symbols(row):<22} -> {_symbols(decoded)}")


def _symbols(ids: torch.Tensor) -> str:
    """Symbol ids as the digits they stand for, without BOS/EOS."""
    return " ".join(str(i - FIRST_SYMBOL_ID) for i in ids.tolist() if i >= FIRST_SYMBOL_ID)


def demo_language_model(steps: int, device: torch.device) -> None:
    """Train a character-level GPT on the corpus and sample from it four ways."""
    # Learned positions are trained only up to the length of the training windows: the model
    # sees windows of block_size characters, and generation keeps to that context.
    task = LanguageModelTask.from_corpus("char", max_chars=CORPUS_CHARS, block_size=128)
    print(f"\n== Character-level GPT: {len(task.train_ids):,} characters of documentation, {steps} steps ==")
    torch.manual_seed(0)
    model = GPT(gpt_config(task, d_model=128, n_layers=3, n_heads=4))
    result = train(model, seeded_batches(task.batch, 16, seed=0), next_token_loss, steps=steps, lr=3e-3,
                   device=device)
    print(f"{count_parameters(model):,} parameters, final loss {result.final_loss:.2f} nats/char")
    model.eval()
    prompt = torch.tensor([task.tokenizer.encode(PROMPT)], device=device)
    strategies = {"greedy": dict(temperature=0), "temperature 0.8": dict(temperature=0.8),
                  "top-k 10": dict(top_k=10), "top-p 0.9": dict(top_p=0.9)}
    for name, options in strategies.items():
        out = generate(model, prompt, 80, generator=torch.Generator(device).manual_seed(0), **options)
        print(f"  {name:>15}: {task.tokenizer.decode(out[0].tolist())!r}")
    report_cache_speed(model, prompt)


def report_cache_speed(model: GPT, prompt: torch.Tensor) -> None:
    """Time greedy generation up to a full context with and without the KV cache; check both give the same text."""
    new_tokens = model.config.block_size - prompt.size(1)
    timings, outputs = {}, {}
    for use_cache in (True, False):
        start = time.perf_counter()
        outputs[use_cache] = generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)
        timings[use_cache] = time.perf_counter() - start
    same = torch.equal(outputs[True], outputs[False])
    print(f"  KV cache: {new_tokens} tokens in {timings[True]:.2f} s with, {timings[False]:.2f} s without "
          f"({timings[False] / timings[True]:.1f}x), same tokens: {same}")


def run_demo(reversal_steps: int = 600, lm_steps: int = 600, device: str | None = None) -> int:
    """Run both demonstrations; returns a process exit code."""
    chosen = resolve_device(device)
    print(f"tfcourse demo on {chosen}")
    demo_reversal(reversal_steps, chosen)
    demo_language_model(lm_steps, chosen)
    return 0
