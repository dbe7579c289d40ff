"""Encoder and decoder layers and their stacks ("Attention Is All You Need", section 3.1).

Encoder layer:  x -> self-attention -> feed-forward, each in a residual connection.
Decoder layer:  y -> masked self-attention -> cross-attention to the encoder's output
(``memory``) -> feed-forward. Queries of the cross-attention come from the decoder,
keys and values from the encoder: that is the only path from source to target.

``norm_first=False`` is the original post-LN arrangement, ``True`` the pre-LN one that
modern models use. Masks are boolean, True = may attend.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.layers import FeedForward, LayerNorm, ResidualConnection
from tfcourse.multihead import MultiHeadAttention


class EncoderLayer(nn.Module):
    """Self-attention and a feed-forward network, ``(B, L, d) -> (B, L, d)``.

    Members: ``self_attn``, ``ff`` (``w1``, ``w2``), ``self_attn_residual`` and
    ``ff_residual`` (each holding its ``norm``). A GPT's :class:`~tfcourse.model.Block` is a
    pre-LN encoder layer whose self-attention is causal.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = False,
        activation: str = "relu",
        eps: float = 1e-5,
        fused: bool = False,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, fused=fused)
        self.ff = FeedForward(d_model, d_ff, activation, dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first, eps)
        self.ff_residual = ResidualConnection(d_model, dropout, norm_first, eps)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, mask)[0])
        return self.ff_residual(x, self.ff)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer, fused: bool = False) -> "EncoderLayer":
        """A copy of a ``torch.nn.TransformerEncoderLayer`` (ReLU or GELU activation)."""
        ours = _empty_copy(cls, layer, fused)
        _copy_attention(ours.self_attn, layer.self_attn)
        _copy_feed_forward_and_norms(ours, layer, [ours.self_attn_residual, ours.ff_residual])
        return ours


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention and a feed-forward network.

    ``forward(x (B, Lt, d), memory (B, Ls, d), tgt_mask, memory_mask) -> (B, Lt, d)``;
    ``tgt_mask`` is usually causal (plus target padding), ``memory_mask`` hides source padding.
    Members: ``self_attn``, ``cross_attn``, ``ff``, ``self_attn_residual``,
    ``cross_attn_residual``, ``ff_residual``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = False,
        activation: str = "relu",
        eps: float = 1e-5,
        fused: bool = False,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, fused=fused)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, fused=fused)
        self.ff = FeedForward(d_model, d_ff, activation, dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first, eps)
        self.cross_attn_residual = ResidualConnection(d_model, dropout, norm_first, eps)
        self.ff_residual = ResidualConnection(d_model, dropout, norm_first, eps)

    def forward(
        self, x: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None
    ) -> Tensor:
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0])
        return self.ff_residual(x, self.ff)

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer, fused: bool = False) -> "DecoderLayer":
        """A copy of a ``torch.nn.TransformerDecoderLayer`` (ReLU or GELU activation)."""
        ours = _empty_copy(cls, layer, fused)
        _copy_attention(ours.self_attn, layer.self_attn)
        _copy_attention(ours.cross_attn, layer.multihead_attn)
        _copy_feed_forward_and_norms(ours, layer, [ours.self_attn_residual, ours.cross_attn_residual, ours.ff_residual])
        return ours


class Encoder(nn.Module):
    """``n_layers`` :class:`EncoderLayer` s; pre-LN stacks end with a final ``norm``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, **layer_options):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first, **layer_options) for _ in range(n_layers)
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """``n_layers`` :class:`DecoderLayer` s; pre-LN stacks end with a final ``norm``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, **layer_options):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first, **layer_options) for _ in range(n_layers)
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(
        self, x: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask)
        return self.norm(x)


def _empty_copy(cls: type, layer: nn.Module, fused: bool) -> nn.Module:
    """A ``cls`` with the sizes, options, device and dtype of a PyTorch layer."""
    ours = cls(
        d_model=layer.linear1.in_features,
        n_heads=layer.self_attn.num_heads,
        d_ff=layer.linear1.out_features,
        dropout=layer.dropout.p,
        norm_first=layer.norm_first,
        activation=_activation_name(layer.activation),
        eps=layer.norm1.eps,
        fused=fused,
    )
    return ours.to(layer.linear1.weight.device, layer.linear1.weight.dtype)


def _activation_name(activation: Callable | nn.Module) -> str:
    """``"relu"`` or ``"gelu"`` for the activation a PyTorch layer holds."""
    if activation is F.relu or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is F.gelu or (isinstance(activation, nn.GELU) and activation.approximate == "none"):
        return "gelu"
    raise ValueError(f"only ReLU or exact-GELU PyTorch layers can be copied, not {activation}")


def _copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    ours.load_state_dict(MultiHeadAttention.from_torch(theirs).state_dict())


def _copy_feed_forward_and_norms(ours: nn.Module, layer: nn.Module, residuals: list[ResidualConnection]) -> None:
    """``linear1``/``linear2`` into ``ff.w1``/``ff.w2``; ``norm1``, ``norm2``, ... into the residuals' norms."""
    ours.ff.w1.load_state_dict(layer.linear1.state_dict())
    ours.ff.w2.load_state_dict(layer.linear2.state_dict())
    for i, residual in enumerate(residuals, start=1):
        residual.norm.load_state_dict(getattr(layer, f"norm{i}").state_dict())
