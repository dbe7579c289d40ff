"""Scaled dot-product attention, written out step by step.

For queries ``Q`` (``(..., q_len, d_k)``), keys ``K`` (``(..., k_len, d_k)``) and values
``V`` (``(..., k_len, d_v)``):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Masked positions get a score of ``-inf`` before the softmax, so they receive zero weight.
A query whose every key is masked gets all-zero weights (and a zero output), never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """Numerically stable softmax of ``x / temperature`` along ``dim``.

    softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j)

    Subtracting the maximum leaves the result unchanged but keeps ``exp`` from
    overflowing. A slice that is entirely ``-inf`` (a fully masked row) gives zeros.
    Same shape, dtype and device as ``x``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    x = x / temperature
    row_max = x.amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exps = torch.exp(x - row_max)
    total = exps.sum(dim=dim, keepdim=True)
    return exps / torch.where(total > 0, total, torch.ones_like(total))


def attention_scores(q: Tensor, k: Tensor) -> Tensor:
    """Scaled similarity of every query with every key: ``q @ k^T / sqrt(d_k)``.

    ``q``: ``(..., q_len, d_k)``, ``k``: ``(..., k_len, d_k)`` -> ``(..., q_len, k_len)``.
    Dividing by sqrt(d_k) keeps the scores' variance near 1 when q and k have
    unit-variance entries, so the softmax does not saturate.
    """
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v`` with an optional boolean mask.

    ``q``: ``(..., q_len, d_k)``, ``k``: ``(..., k_len, d_k)``, ``v``: ``(..., k_len, d_v)``,
    ``mask``: bool, broadcastable to ``(..., q_len, k_len)``, True = may attend.
    ``dropout_p``: probability of dropping each weight before it multiplies ``v``
    (training only; the returned weights are the undropped distribution).
    Returns ``(output (..., q_len, d_v), weights (..., q_len, k_len))``.
    """
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


def attention_entropy(weights: Tensor) -> Tensor:
    """Entropy in nats of each query's attention distribution.

    H = -sum_j w_j log w_j over the last dimension, with 0 log 0 = 0.
    ``(..., q_len, k_len)`` -> ``(..., q_len)``. Uniform attention over n keys gives log n;
    attention on a single key gives 0.
    """
    logs = torch.log(torch.where(weights > 0, weights, torch.ones_like(weights)))
    return -(weights * logs).sum(dim=-1)
