"""From token ids to vectors: embeddings and positional information.

Attention is blind to order (permuting the inputs permutes the outputs), so position
enters either by adding a position vector to each token vector (sinusoidal or learned)
or by rotating queries and keys by an angle proportional to their position (rotary).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_positional_encoding(
    seq_len: int,
    d_model: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The fixed table of "Attention Is All You Need", ``Tensor[seq_len, d_model]``.

        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))

    Each pair of columns is a clock at its own frequency, so ``PE[pos + k]`` is a fixed
    rotation of ``PE[pos]``. ``d_model`` must be even.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = torch.arange(seq_len, dtype=dtype, device=device)[:, None]
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=dtype, device=device) * (-math.log(10000.0) / d_model))
    angles = position * inv_freq
    table = torch.empty(seq_len, d_model, dtype=dtype, device=device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class TokenEmbedding(nn.Module):
    """Look up a vector per token id and scale it by sqrt(d_model).

    ``(batch, seq)`` ids -> ``(batch, seq, d_model)``. The scale makes the embeddings'
    magnitude comparable to the positional encoding added to them.
    """

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids: Tensor) -> Tensor:
        return self.embedding(ids) * math.sqrt(self.d_model)


class LearnedPositionalEmbedding(nn.Module):
    """A trained vector per position (GPT-2 style), ``(batch, seq, d) -> (batch, seq, d)``.

    ``offset`` shifts the positions, for decoding with a KV cache where the new tokens
    start after ``offset`` cached ones.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        seq_len = x.size(-2)
        if offset + seq_len > self.embedding.num_embeddings:
            raise ValueError(
                f"sequence of {offset + seq_len} positions exceeds max_len={self.embedding.num_embeddings}"
            )
        positions = torch.arange(offset, offset + seq_len, device=x.device)
        return x + self.embedding(positions)


def apply_rotary(x: Tensor, positions: Tensor | None = None, base: float = 10000.0) -> Tensor:
    """Rotary position embedding (RoPE), rotate-half convention.

    ``x``: ``(..., seq, d)`` with ``d`` even; ``positions``: ``(seq,)`` (default
    ``0..seq-1``). Each pair ``(x[..., i], x[..., i + d/2])`` is rotated by the angle
    ``theta = position * base^(-2i/d)``:

        x'_i       = x_i cos(theta) - x_{i+d/2} sin(theta)
        x'_{i+d/2} = x_i sin(theta) + x_{i+d/2} cos(theta)

    Rotating both queries and keys makes ``q_m . k_n`` depend only on ``m - n``.

    The angles are computed in at least float32 whatever ``x``'s dtype: in bfloat16 a
    position such as 2047 would round to 2048 and its angle by up to a whole radian.
    """
    seq_len, dim = x.shape[-2], x.shape[-1]
    if dim % 2:
        raise ValueError(f"the last dimension must be even, got {dim}")
    if positions is None:
        positions = torch.arange(seq_len, device=x.device)
    if positions.shape != (seq_len,):
        raise ValueError(f"positions must have shape ({seq_len},), one per position of x; "
                         f"got {tuple(positions.shape)}")
    half = dim // 2
    angle_dtype = torch.promote_types(x.dtype, torch.float32)
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=angle_dtype) * 2 / dim)  # (d/2,)
    angles = positions.to(angle_dtype)[:, None] * inv_freq  # (seq, d/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    first, second = x[..., :half], x[..., half:]
    rotated = torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)  # (..., seq, d)
    return rotated.to(x.dtype)
