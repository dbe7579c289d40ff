"""The position-wise feed-forward network in NumPy.

Weights are stored ``(d_in, d_out)`` and applied as ``x @ w``: ``w1`` is the TRANSPOSE of
the ``weight`` of ``nn.Linear(d_model, d_ff)``, whose weight is ``(d_ff, d_model)``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise; same shape and dtype as ``x``."""
    return np.maximum(x, 0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``, elementwise.

    NumPy has no ``erf``, so ``math.erf`` is applied to each element (in float64).
    Same shape and dtype as ``x``; matches ``F.gelu(x)`` (``approximate="none"``).
    """
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"relu": relu, "gelu": gelu}


def feed_forward(
    x: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    activation: str = "relu",
) -> np.ndarray:
    """``FFN(x) = act(x @ w1 + b1) @ w2 + b2``, applied to every position independently.

    ``x``: ``(..., d_model)``, ``w1``: ``(d_model, d_ff)``, ``b1``: ``(d_ff,)``,
    ``w2``: ``(d_ff, d_model)``, ``b2``: ``(d_model,)`` -> ``(..., d_model)``.
    ``w1`` and ``w2`` are the transposes of the matching ``nn.Linear`` weights.
    ``activation`` is ``"relu"`` or ``"gelu"``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation](x @ w1 + b1) @ w2 + b2
