"""Sliding-window and linear attention against masked softmax attention built from PyTorch's own functions."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tfcourse.efficient_attention import (
    AttentionCost,
    attention_cost,
    linear_attention,
    peak_bytes,
    plot_attention_cost,
    sliding_window_attention,
    sliding_window_mask,
)


def _window_mask_by_loops(n: int, window: int) -> torch.Tensor:
    return torch.tensor([[0 <= i - j < window for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("n, window", [(1, 1), (6, 1), (6, 3), (7, 7), (5, 9)])
def test_sliding_window_mask_keeps_the_window_most_recent_keys(device, n, window):
    mask = sliding_window_mask(n, window, device)
    assert mask.dtype == torch.bool and mask.device.type == device.type
    assert torch.equal(mask.cpu(), _window_mask_by_loops(n, window))


def test_sliding_window_mask_rejects_an_empty_window():
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(4, 0)


@pytest.mark.parametrize("n, window", [(1, 1), (9, 1), (10, 3), (16, 4), (7, 7), (5, 8)])
def test_blockwise_sliding_window_attention_equals_masked_softmax_attention(device, dtype, tol, n, window):
    q, k = (torch.randn(2, 3, n, 4, device=device, dtype=dtype) for _ in range(2))
    v = torch.randn(2, 3, n, 5, device=device, dtype=dtype)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=_window_mask_by_loops(n, window).to(device))
    assert_close(sliding_window_attention(q, k, v, window), expected, **tol)


def _naive_linear_attention(q, k, v, causal, eps=1e-6):
    """O(n^2): the kernel matrix A_ij = phi(q_i) . phi(k_j), masked, rows normalised by their sums."""
    kernel = torch.einsum("...id,...jd->...ij", F.elu(q) + 1, F.elu(k) + 1)
    if causal:
        kernel = kernel * torch.ones(q.size(-2), k.size(-2), device=q.device).tril()
    return (kernel @ v) / (kernel.sum(-1, keepdim=True) + eps)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_equals_the_quadratic_kernel_attention(device, dtype, tol, causal):
    q, k = (torch.randn(2, 3, 7, 4, device=device, dtype=dtype) for _ in range(2))
    v = torch.randn(2, 3, 7, 6, device=device, dtype=dtype)
    assert_close(linear_attention(q, k, v, causal=causal), _naive_linear_attention(q, k, v, causal), **tol)


def test_linear_attention_cross_attends_to_a_longer_memory(dtype, tol):
    q, k, v = torch.randn(2, 3, 4, dtype=dtype), torch.randn(2, 9, 4, dtype=dtype), torch.randn(2, 9, 5, dtype=dtype)
    assert_close(linear_attention(q, k, v), _naive_linear_attention(q, k, v, causal=False), **tol)


def test_causal_linear_attention_ignores_future_keys():
    q, k, v = (torch.randn(1, 8, 4, dtype=torch.float64) for _ in range(3))
    changed_k, changed_v = k.clone(), v.clone()
    changed_k[:, 5:] += 3.0
    changed_v[:, 5:] -= 2.0
    assert_close(linear_attention(q, k, v, causal=True)[:, :5], linear_attention(q, changed_k, changed_v, True)[:, :5])


def test_peak_bytes_sees_the_score_matrix():
    n = 256
    q = torch.randn(1, 1, n, 8, dtype=torch.float64)
    scores_bytes = n * n * 8
    assert peak_bytes(lambda: (q @ q.transpose(-1, -2)).softmax(-1) @ q, torch.device("cpu")) >= scores_bytes
    assert peak_bytes(lambda: q + 1, torch.device("cpu")) < scores_bytes


def test_softmax_attention_memory_grows_quadratically_and_the_others_linearly():
    costs = attention_cost([256, 1024], window=32, n_heads=2, d_head=8, repeats=1)
    growth = {name: cost.peak_bytes[1] / cost.peak_bytes[0] for name, cost in costs.items()}
    assert growth["softmax"] > 12          # 16 for n^2
    assert growth["sliding window 32"] < 6  # 4 for n
    assert growth["linear"] < 6
    assert all(s > 0 for cost in costs.values() for s in cost.seconds)


def test_the_cost_figure_plots_time_and_memory_on_log_axes():
    costs = {"a": AttentionCost([128, 256], [0.001, 0.004], [2**20, 2**22]),
             "b": AttentionCost([128, 256], [0.001, 0.002], [2**20, 2**21])}
    time_ax, memory_ax = plot_attention_cost(costs).axes
    assert time_ax.get_xscale() == memory_ax.get_yscale() == "log"
    assert [line.get_label() for line in memory_ax.get_lines()] == ["a", "b"]
    assert list(memory_ax.get_lines()[0].get_ydata()) == [1.0, 4.0]  # MiB
    assert list(time_ax.get_lines()[1].get_ydata()) == [1.0, 2.0]  # milliseconds
