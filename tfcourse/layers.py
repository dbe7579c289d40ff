"""The pieces around attention: feed-forward networks, normalisation, residuals.

The functions (``gelu``, ``silu``, ``layer_norm``, ``rms_norm``) write the maths out; the
normalisation modules call PyTorch's fused kernels for the same maths (the tests check that
they agree).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": partial(F.gelu, approximate="tanh"),
}


def gelu(x: Tensor) -> Tensor:
    """Gaussian error linear unit, exact form: ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x: Tensor) -> Tensor:
    """Sigmoid linear unit (also called swish): ``x * sigmoid(x) = x / (1 + exp(-x))``.

    Smooth and non-monotonic: close to ``x`` for large positive ``x``, close to 0 for large
    negative ``x``, with a minimum of about -0.28 at ``x`` = -1.28. ``torch.sigmoid`` keeps
    it finite for any ``|x|`` (``1 / (1 + exp(-x))`` written out overflows for ``x`` below
    about -709 in float64 and turns the gradient into NaN).
    """
    return x * torch.sigmoid(x)


class FeedForward(nn.Module):
    """Position-wise feed-forward network: ``w2(dropout(act(w1 x)))``.

    ``(..., d_model) -> (..., d_model)`` through a hidden layer of ``d_ff`` units (4 d_model
    in the original Transformer: expand, apply a non-linearity, contract).
    ``activation``: ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"`` (GPT-2's approximation).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.w1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.dropout(self.activation(self.w1(x))))


class SwiGLU(nn.Module):
    """Gated feed-forward network (Shazeer, 2020): ``w2(silu(w1 x) * w3 x)``.

    ``w1`` and ``w3`` project ``d_model -> d_ff`` (gate and value), ``w2`` projects back
    down to ``d_model``. No biases, as in LLaMA.
    """

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(silu(self.w1(x)) * self.w3(x))


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each vector over its last dimension, then scale and shift.

        y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias

    with the biased variance ``mean((x - mean(x))^2)``. ``x``: ``(..., d)``; ``weight``,
    ``bias``: ``(d,)``.
    """
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


class LayerNorm(nn.Module):
    """:func:`layer_norm` with learned ``weight`` (ones) and ``bias`` (zeros) of shape ``(d_model,)``."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation (no centring, no bias).

        y = x / sqrt(mean(x^2) + eps) * weight

    ``x``: ``(..., d)``; ``weight``: ``(d,)``.
    """
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    """:func:`rms_norm` with a learned ``weight`` of shape ``(d_model,)``."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class ResidualConnection(nn.Module):
    """A sublayer wrapped in a residual connection and a LayerNorm (member ``norm``).

    Pre-LN (``norm_first=True``):  ``x + dropout(sublayer(norm(x)))``
    Post-LN (``norm_first=False``): ``norm(x + dropout(sublayer(x)))``

    The residual path lets gradients reach early layers unchanged; pre-LN keeps that path
    free of normalisation, which is why deep pre-LN stacks train without warm-up.
    """

    def __init__(self, d_model: int, dropout: float = 0.0, norm_first: bool = True, eps: float = 1e-5):
        super().__init__()
        self.norm = LayerNorm(d_model, eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))
