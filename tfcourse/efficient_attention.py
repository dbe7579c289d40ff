"""Attention that costs less than ``O(n^2)``: a sliding window and a linear (kernel) attention.

Softmax attention compares every query with every key: for a sequence of ``n`` tokens it
computes and stores an ``(n, n)`` score matrix per head, so time and memory grow as ``n^2``.

* **Sliding window** (Longformer, Mistral): query ``i`` sees only the ``window`` most recent keys,
  ``i - window < j <= i``. Computed block by block, each block of ``window`` queries against the
  ``2 * window`` keys that can reach it, the cost is ``O(n * window)``; information still travels
  further than ``window`` through the layers of a stack.
* **Linear attention** (Katharopoulos et al., 2020) replaces ``exp(q . k)`` by a kernel
  ``phi(q) . phi(k)`` with the feature map ``phi(x) = elu(x) + 1 > 0``. The sums over keys then
  factor out of the queries:

      out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i),   S_i = sum_j phi(k_j) v_j^T,   z_i = sum_j phi(k_j)

  with ``j`` over all keys, or ``j <= i`` (cumulative sums) when causal: ``O(n d_k d_v)``.

:func:`attention_cost` measures time and peak memory of the three for growing lengths.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from tfcourse.attention import scaled_dot_product_attention
from tfcourse.masks import causal_mask

if TYPE_CHECKING:
    from tfcourse.figures import NotebookFigure


def sliding_window_mask(seq_len: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """Causal sliding-window mask: query ``i`` may attend to key ``j`` when ``i - window < j <= i``.

    Each query sees at most ``window`` keys, itself included (``window >= seq_len`` is the causal
    mask). Returns a ``BoolTensor[seq_len, seq_len]``, True = may attend.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    return causal_mask(seq_len, device).triu(1 - window)


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:
    """Causal sliding-window attention computed block by block in ``O(n * window)``.

    ``q``, ``k``: ``(..., n, d_k)``, ``v``: ``(..., n, d_v)`` -> ``(..., n, d_v)``; the same numbers
    as softmax attention with :func:`sliding_window_mask`. The queries are cut into blocks of
    ``window``; block ``c`` (positions ``c w .. c w + w - 1``) can only reach keys
    ``c w - w + 1 .. c w + w - 1``, so it is scored against the ``2 w`` keys from ``c w - w`` on
    (keys before the sequence start are zero padding, masked out).
    """
    n = q.size(-2)
    n_blocks = -(-n // window)
    pad_keys = (0, 0, window, n_blocks * window - n)  # window zero keys in front, the last block filled up
    keys = F.pad(k, pad_keys).unfold(-2, 2 * window, window).transpose(-1, -2)  # (..., blocks, 2w, d_k)
    values = F.pad(v, pad_keys).unfold(-2, 2 * window, window).transpose(-1, -2)
    queries = F.pad(q, (0, 0, 0, n_blocks * window - n)).unflatten(-2, (n_blocks, window))  # (..., blocks, w, d_k)
    query_pos = torch.arange(n_blocks * window, device=q.device).view(n_blocks, window, 1)
    key_pos = (torch.arange(n_blocks, device=q.device) * window).view(n_blocks, 1, 1) + \
        torch.arange(-window, window, device=q.device)
    distance = query_pos - key_pos  # (blocks, w, 2w): i - j
    mask = (distance >= 0) & (distance < window) & (key_pos >= 0)
    out, _ = scaled_dot_product_attention(queries, keys, values, mask)
    return out.flatten(-3, -2)[..., :n, :]


def elu_feature_map(x: Tensor) -> Tensor:
    """``phi(x) = elu(x) + 1``: positive everywhere, so kernel scores and their sums are positive."""
    return F.elu(x) + 1


def linear_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False, eps: float = 1e-6) -> Tensor:
    """Linear (kernel) attention with the feature map ``phi(x) = elu(x) + 1``.

    ``q``: ``(..., n, d_k)``, ``k``: ``(..., m, d_k)``, ``v``: ``(..., m, d_v)`` -> ``(..., n, d_v)``::

        out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)

    Not causal: ``S = phi(K)^T V`` (``(d_k, d_v)``) and ``z = sum_j phi(k_j)``, the same for every
    query. Causal (``n == m``): ``S_i`` and ``z_i`` sum over keys ``j <= i``, cumulative sums along
    the sequence. Either way the cost is linear in the sequence length; the result equals
    ``(A V) / (A 1 + eps)`` with ``A_ij = phi(q_i) . phi(k_j)`` (masked to ``j <= i`` when causal).
    """
    q, k = elu_feature_map(q), elu_feature_map(k)
    if causal:
        state = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., n, d_k, d_v): S_i
        numerator = (q.unsqueeze(-2) @ state).squeeze(-2)
        normaliser = (q * torch.cumsum(k, dim=-2)).sum(-1, keepdim=True)
    else:
        numerator = q @ (k.transpose(-2, -1) @ v)
        normaliser = q @ k.sum(-2).unsqueeze(-1)
    return numerator / (normaliser + eps)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal softmax attention with the full ``(n, n)`` score matrix (the ``O(n^2)`` baseline)."""
    return scaled_dot_product_attention(q, k, v, causal_mask(q.size(-2), q.device))[0]


def attention_variants(window: int) -> dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]]:
    """The three causal attentions :func:`attention_cost` compares, by name."""
    return {"softmax": softmax_attention,
            f"sliding window {window}": lambda q, k, v: sliding_window_attention(q, k, v, window),
            "linear": lambda q, k, v: linear_attention(q, k, v, causal=True)}


@contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 (the profiler's start and stop lines) to ``os.devnull``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """The most memory ``fn()``'s tensors held at once, in bytes, beyond what existed before the call.

    On CUDA, from the allocator's peak statistic; on the CPU, from PyTorch's profiler, whose memory
    records (each allocation and free, in time order) are summed into the bytes alive at each moment
    (the profiler's own log lines are silenced).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with _silenced_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes = sorted((event.time_range.start, event.self_cpu_memory_usage) for event in prof.events()
                     if event.self_cpu_memory_usage)
    alive, peak = 0, 0
    for _, change in changes:
        alive += change
        peak = max(peak, alive)
    return peak


def seconds_per_call(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (after one warm-up call), in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class AttentionCost:
    """Measured cost of one attention at growing lengths: ``seconds[i]`` and ``peak_bytes[i]`` at ``lengths[i]``."""

    lengths: list[int]
    seconds: list[float]
    peak_bytes: list[int]


@torch.no_grad()
def attention_cost(lengths: Sequence[int], window: int = 64, n_heads: int = 4, d_head: int = 32,
                   repeats: int = 3, device: torch.device | str = "cpu", seed: int = 0) -> dict[str, AttentionCost]:
    """Time and peak memory of causal softmax, sliding-window and linear attention, one sequence per length.

    Queries, keys and values are random ``(1, n_heads, n, d_head)`` float32 tensors. Time is the best
    of ``repeats`` calls (:func:`seconds_per_call`), memory the peak of one call (:func:`peak_bytes`).
    Softmax attention grows as ``n^2`` in both; the other two grow linearly in ``n``.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    costs = {name: AttentionCost([], [], []) for name in attention_variants(window)}
    for n in lengths:
        q, k, v = (torch.randn(1, n_heads, n, d_head, generator=generator).to(device) for _ in range(3))
        for name, attend in attention_variants(window).items():
            call = functools.partial(attend, q, k, v)
            costs[name].lengths.append(n)
            costs[name].seconds.append(seconds_per_call(call, device, repeats))
            costs[name].peak_bytes.append(peak_bytes(call, device))
    return costs


def plot_attention_cost(costs: dict[str, AttentionCost]) -> NotebookFigure:
    """Two log-log panels: milliseconds per call and peak MiB against sequence length."""
    from tfcourse.figures import panel_grid  # matplotlib only to plot: grading imports this module's functions

    fig, (time_ax, memory_ax) = panel_grid(2, columns=2)
    for name, cost in costs.items():
        time_ax.plot(cost.lengths, [1e3 * s for s in cost.seconds], marker="o", label=name)
        memory_ax.plot(cost.lengths, [b / 2**20 for b in cost.peak_bytes], marker="o", label=name)
    for ax, ylabel in ((time_ax, "milliseconds per call"), (memory_ax, "peak memory (MiB)")):
        ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel=ylabel)
        ax.legend()
    time_ax.set_title("Time")
    memory_ax.set_title("Memory")
    return fig
