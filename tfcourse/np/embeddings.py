"""The sinusoidal positional encoding table in NumPy."""

from __future__ import annotations

import numpy as np


def sinusoidal_positional_encoding(seq_len: int, d_model: int, *, dtype: np.dtype = np.float64) -> np.ndarray:
    """The fixed table of "Attention Is All You Need", shape ``(seq_len, d_model)``.

        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))

    Computed in float64 and returned as ``dtype``. ``d_model`` must be even.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = np.arange(seq_len)[:, None]
    even_dims = np.arange(0, d_model, 2)
    angles = position / 10000.0 ** (even_dims / d_model)
    table = np.empty((seq_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table.astype(dtype)
