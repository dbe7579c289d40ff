"""Layer normalisation in NumPy."""

from __future__ import annotations

import numpy as np


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalise each vector over the last axis, then scale and shift it.

        y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias

    ``var`` is the biased variance (divide by ``d``, not ``d - 1``), as in ``nn.LayerNorm``.
    ``x``: ``(..., d)``, ``weight`` and ``bias``: ``(d,)`` -> ``(..., d)``, dtype of ``x``.
    """
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias
