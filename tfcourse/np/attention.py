"""Scaled dot-product attention in NumPy.

For queries ``Q`` (``(..., q_len, d_k)``), keys ``K`` (``(..., k_len, d_k)``) and values
``V`` (``(..., k_len, d_v)``):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Masked positions get a score of ``-inf`` before the softmax, so they receive zero weight.
A query whose every key is masked gets all-zero weights (and a zero output), never NaN.
"""

from __future__ import annotations

import math

import numpy as np


def softmax(x: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax of ``x / temperature`` along ``axis``.

    softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j)

    Subtracting the maximum leaves the result unchanged but keeps ``exp`` from
    overflowing. A slice that is entirely ``-inf`` (a fully masked row) gives zeros.
    Same shape and dtype as ``x``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    x = x / temperature
    row_max = x.max(axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    exps = np.exp(x - row_max)
    total = exps.sum(axis=axis, keepdims=True)
    return exps / np.where(total > 0, total, 1.0)


def attention_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Scaled similarity of every query with every key: ``q @ k^T / sqrt(d_k)``.

    ``q``: ``(..., q_len, d_k)``, ``k``: ``(..., k_len, d_k)`` -> ``(..., q_len, k_len)``.
    """
    return q @ np.swapaxes(k, -2, -1) / math.sqrt(q.shape[-1])


def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(q k^T / sqrt(d_k)) v`` with an optional boolean mask.

    ``q``: ``(..., q_len, d_k)``, ``k``: ``(..., k_len, d_k)``, ``v``: ``(..., k_len, d_v)``,
    ``mask``: bool, broadcastable to ``(..., q_len, k_len)``, True = may attend.
    Returns ``(output (..., q_len, d_v), weights (..., q_len, k_len))``.
    """
    scores = attention_scores(q, k)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights
