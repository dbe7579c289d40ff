"""Multi-head attention: several attention patterns computed side by side.

Each of ``n_heads`` heads projects the inputs to its own ``d_head = d_model / n_heads``
dimensional queries, keys and values, attends, and the heads' outputs are concatenated
and mixed by an output projection:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O,  head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.attention import scaled_dot_product_attention
from tfcourse.kv_cache import LayerCache
from tfcourse.masks import causal_mask


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """``(batch, seq, d_model)`` -> ``(batch, n_heads, seq, d_head)``.

    Head ``h`` takes features ``h * d_head : (h + 1) * d_head``.
    """
    batch, seq, d_model = x.shape
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return x.view(batch, seq, n_heads, d_model // n_heads).transpose(1, 2)  # (B, h, L, d_head)


def merge_heads(x: Tensor) -> Tensor:
    """``(batch, n_heads, seq, d_head)`` -> ``(batch, seq, n_heads * d_head)``; undoes :func:`split_heads`."""
    batch, n_heads, seq, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq, n_heads * d_head)  # (B, L, h * d_head)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with projections ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.

    ``forward(query (B, Lq, d), key (B, Lk, d), value (B, Lk, d), mask=None)`` returns
    ``(output (B, Lq, d), weights (B, heads, Lq, Lk))``. ``fused=True`` computes the same
    numbers with ``F.scaled_dot_product_attention`` (faster, and it returns ``weights=None``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, fused: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.dropout, self.fused = n_heads, dropout, fused
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        *,
        is_causal: bool = False,
        cache: LayerCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        ``mask``: bool, broadcastable to ``(B, heads, Lq, Lk)``, True = may attend.
        ``is_causal``: also forbid attending to later positions.
        ``cache``: keys/values of earlier positions; the new ones are appended to it.
        """
        q = split_heads(self.q_proj(query), self.n_heads)  # (B, h, Lq, d_head)
        k = split_heads(self.k_proj(key), self.n_heads)  # (B, h, Lk, d_head)
        v = split_heads(self.v_proj(value), self.n_heads)  # (B, h, Lk, d_head)
        past_len = 0
        if cache is not None:
            past_len = cache.length
            k, v = cache.update(k, v)  # (B, h, past_len + Lk, d_head)
        dropout_p = self.dropout if self.training else 0.0
        if is_causal and (mask is not None or past_len > 0 or not self.fused):
            causal = causal_mask(q.size(-2), q.device, past_len=past_len)  # (Lq, past_len + Lk)
            mask, is_causal = (causal if mask is None else mask & causal), False
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
            weights = None
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)  # weights (B, h, Lq, Lk)
        return self.out_proj(merge_heads(out)), weights  # out (B, h, Lq, d_head) -> (B, Lq, d)

    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention, fused: bool = False) -> "MultiHeadAttention":
        """A copy of ``torch.nn.MultiheadAttention``'s weights (same embed dim for q, k, v)."""
        if not torch_mha._qkv_same_embed_dim or torch_mha.bias_k is not None or torch_mha.add_zero_attn:
            raise ValueError("only nn.MultiheadAttention with kdim = vdim = embed_dim and no bias_k/add_zero_attn")
        has_bias = torch_mha.in_proj_bias is not None
        mha = cls(torch_mha.embed_dim, torch_mha.num_heads, torch_mha.dropout, bias=has_bias, fused=fused)
        ref = torch_mha.in_proj_weight
        mha.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for proj, weight in zip((mha.q_proj, mha.k_proj, mha.v_proj), ref.chunk(3)):
                proj.weight.copy_(weight)
            mha.out_proj.weight.copy_(torch_mha.out_proj.weight)
            if has_bias:
                for proj, bias in zip((mha.q_proj, mha.k_proj, mha.v_proj), torch_mha.in_proj_bias.chunk(3)):
                    proj.bias.copy_(bias)
                mha.out_proj.bias.copy_(torch_mha.out_proj.bias)
        return mha
