"""Multi-head self-attention in NumPy.

Each of ``n_heads`` heads attends with its own ``d_head = d_model / n_heads`` dimensional
slice of the projected queries, keys and values; the heads' outputs are concatenated and
mixed by an output projection:

    MultiHead(X) = Concat(head_1, ..., head_h) W_O,  head_i = Attention(X W_Q^i, X W_K^i, X W_V^i)

Projection matrices are ``(d_model, d_model)`` and applied as ``x @ w``: the TRANSPOSE of
an ``nn.Linear`` weight.
"""

from __future__ import annotations

import numpy as np

from tfcourse.np.attention import scaled_dot_product_attention


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """``(batch, seq, d_model)`` -> ``(batch, n_heads, seq, d_head)``.

    Head ``h`` takes features ``h * d_head : (h + 1) * d_head``.
    """
    batch, seq, d_model = x.shape
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return x.reshape(batch, seq, n_heads, d_model // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """``(batch, n_heads, seq, d_head)`` -> ``(batch, seq, n_heads * d_head)``; undoes :func:`split_heads`."""
    batch, n_heads, seq, d_head = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, n_heads * d_head)


def multi_head_attention(
    x: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    w_v: np.ndarray,
    w_o: np.ndarray,
    n_heads: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-attention of ``x`` with ``n_heads`` heads and no biases.

    ``x``: ``(batch, seq, d_model)``; ``w_q``, ``w_k``, ``w_v``, ``w_o``: ``(d_model, d_model)``,
    applied as ``x @ w`` (transposes of ``nn.Linear`` weights); ``mask``: bool, broadcastable
    to ``(batch, n_heads, seq, seq)``, True = may attend.
    Returns ``(output (batch, seq, d_model), weights (batch, n_heads, seq, seq))``.
    """
    q, k, v = (split_heads(x @ w, n_heads) for w in (w_q, w_k, w_v))
    heads, weights = scaled_dot_product_attention(q, k, v, mask)
    return merge_heads(heads) @ w_o, weights
