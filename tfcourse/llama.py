"""A LLaMA-style decoder: rotary positions inside attention, grouped-query attention, RMSNorm pre-norm, SwiGLU.

Compared with the GPT-2 layout of :class:`tfcourse.model.GPT`, every block

    x <- x + Attention(RMSNorm(x))    queries and keys rotated by their positions (RoPE)
    x <- x + SwiGLU(RMSNorm(x))

has no biases and no learned position table, ``n_heads`` query heads share ``n_kv_heads``
key/value heads (grouped-query attention; ``n_kv_heads == n_heads`` is multi-head,
``n_kv_heads == 1`` multi-query attention), and the output head is not tied to the token
embedding. The KV cache holds only the ``n_kv_heads`` shared heads, so it is
``n_heads / n_kv_heads`` times smaller than a multi-head model's (:func:`kv_cache_bytes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.attention import scaled_dot_product_attention
from tfcourse.kv_cache import KVCache, LayerCache
from tfcourse.layers import RMSNorm, SwiGLU
from tfcourse.masks import causal_mask
from tfcourse.multihead import merge_heads, split_heads


def rope_angles(max_seq_len: int, d_head: int, base: float = 10000.0,
                dtype: torch.dtype | None = None, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """The cosines and sines of every rotary angle up to ``max_seq_len``, each ``(max_seq_len, d_head / 2)``.

    Row ``p``, column ``i`` holds the angle ``p * base^(-2i / d_head)`` of
    :func:`tfcourse.embeddings.apply_rotary`. The angles are computed in at least float32
    (positions above 256 are not exact in bfloat16) and the table is returned in ``dtype``
    (default: the default dtype).
    """
    if d_head % 2:
        raise ValueError(f"d_head must be even, got {d_head}")
    dtype = dtype or torch.get_default_dtype()
    angle_dtype = torch.promote_types(dtype, torch.float32)
    inv_freq = base ** (-torch.arange(0, d_head, 2, device=device, dtype=angle_dtype) / d_head)  # (d/2,)
    angles = torch.arange(max_seq_len, device=device, dtype=angle_dtype)[:, None] * inv_freq  # (L, d/2)
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor) -> Tensor:
    """Rotate ``x (B, heads, T, d)`` at each sequence's own ``positions (B, T)`` (rotate-half convention).

    ``cos``, ``sin``: ``(max_seq_len, d / 2)`` from :func:`rope_angles`. Token ``t`` of
    sequence ``b`` is rotated by the angles of row ``positions[b, t]``: a left-padded or
    continued sequence keeps its true positions. With ``theta = positions[b, t] * base^(-2i/d)``,

        x'_i       = x_i cos(theta) - x_{i+d/2} sin(theta)
        x'_{i+d/2} = x_i sin(theta) + x_{i+d/2} cos(theta)
    """
    cos, sin = cos[positions][:, None], sin[positions][:, None]  # (B, 1, T, d/2), shared by the heads
    half = x.size(-1) // 2
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)  # (B, heads, T, d)


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """``(B, n_kv_heads, T, d) -> (B, n_kv_heads * n_rep, T, d)``: each key/value head serves ``n_rep`` query heads.

    Query head ``h`` reads key/value head ``h // n_rep``, so each head is repeated ``n_rep``
    times in a row (``repeat_interleave``, not ``repeat``, which would cycle through them).
    """
    batch, n_kv_heads, seq_len, d_head = x.shape
    expanded = x[:, :, None].expand(batch, n_kv_heads, n_rep, seq_len, d_head)  # a view, no copy yet
    return expanded.reshape(batch, n_kv_heads * n_rep, seq_len, d_head)


class RotaryTable(nn.Module):
    """The cached cosines and sines of :func:`rope_angles` (buffers ``cos``, ``sin``, not saved in a ``state_dict``).

    ``forward(x (B, heads, T, d), positions (B, T))`` is :func:`apply_rope`. The table is
    computed again whenever the module changes device or dtype, so a model moved to float64
    has exact float64 angles rather than float32 ones widened.
    """

    def __init__(self, d_head: int, max_seq_len: int, base: float = 10000.0):
        super().__init__()
        self.d_head, self.max_seq_len, self.base = d_head, max_seq_len, base
        cos, sin = rope_angles(max_seq_len, d_head, base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.cos, self.sin = rope_angles(self.max_seq_len, self.d_head, self.base, self.cos.dtype, self.cos.device)
        return self

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        return apply_rope(x, self.cos, self.sin, positions)


def default_positions(batch: int, seq_len: int, offset: int, device: torch.device) -> Tensor:
    """``(batch, seq_len)`` positions ``offset .. offset + seq_len - 1`` for every sequence."""
    return torch.arange(offset, offset + seq_len, device=device).expand(batch, seq_len)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``n_heads`` query heads sharing ``n_kv_heads`` key/value heads, and RoPE.

    Members ``q_proj (d_model -> n_heads d_head)``, ``k_proj`` and ``v_proj``
    (``d_model -> n_kv_heads d_head``), ``o_proj (d_model -> d_model)``, all without bias,
    and the rotary table ``rope`` (a :class:`RotaryTable` up to ``max_seq_len``).

    ``forward(x (B, T, d_model), positions=None, mask=None, cache=None) -> (B, T, d_model)``.
    ``positions (B, T)``: each token's position (default: its index, after the cached ones);
    ``mask``: a boolean mask broadcastable to ``(B, n_heads, T, cached + T)``, ``True`` = may
    attend, combined with the causal mask; ``cache``: a :class:`~tfcourse.kv_cache.LayerCache`
    that keeps the rotated keys and the values of the ``n_kv_heads`` shared heads.
    ``fused=True`` runs the attention product through ``F.scaled_dot_product_attention``,
    ``fused=False`` through the explicit maths of :mod:`tfcourse.attention`; they agree.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, max_seq_len: int = 2048,
                 rope_base: float = 10000.0, fused: bool = False):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide d_model ({d_model}) and be a multiple of "
                             f"n_kv_heads ({n_kv_heads})")
        self.n_heads, self.n_kv_heads, self.d_head = n_heads, n_kv_heads, d_model // n_heads
        self.fused = fused
        self.q_proj = nn.Linear(d_model, n_heads * self.d_head, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.rope = RotaryTable(self.d_head, max_seq_len, rope_base)

    def forward(self, x: Tensor, positions: Tensor | None = None, mask: Tensor | None = None,
                cache: LayerCache | None = None) -> Tensor:
        batch, seq_len, _ = x.shape
        past_len = 0 if cache is None else cache.length
        if positions is None:
            positions = default_positions(batch, seq_len, past_len, x.device)
        q = self.rope(split_heads(self.q_proj(x), self.n_heads), positions)  # (B, h, T, d_h)
        k = self.rope(split_heads(self.k_proj(x), self.n_kv_heads), positions)  # (B, h_kv, T, d_h)
        v = split_heads(self.v_proj(x), self.n_kv_heads)  # (B, h_kv, T, d_h)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, h_kv, past_len + T, d_h)
        n_rep = self.n_heads // self.n_kv_heads
        causal = causal_mask(seq_len, x.device, past_len=past_len)  # (T, past_len + T)
        mask = causal if mask is None else mask & causal
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, h, past_len + T, d_h)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, T, d_h)
        else:
            out, _ = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_h)
        return self.o_proj(merge_heads(out))  # (B, T, d_model)


@dataclass
class LlamaConfig:
    """Sizes and options of a :class:`Llama`. ``n_kv_heads=None`` means ``n_heads`` (multi-head attention);
    ``d_ff=None`` means LLaMA's ``2/3 * 4 d_model``, rounded up to a multiple of 8."""

    vocab_size: int = 256
    max_seq_len: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_model: int = 128
    d_ff: int | None = None
    rope_base: float = 10000.0
    eps: float = 1e-6
    fused: bool = True

    @property
    def block_size(self) -> int:
        """The longest context, under the name :func:`tfcourse.generation.generate` reads."""
        return self.max_seq_len

    @property
    def hidden_size(self) -> int:
        """The SwiGLU's width ``d_ff``."""
        return self.d_ff or 8 * math.ceil(2 * 4 * self.d_model / 3 / 8)


class LlamaBlock(nn.Module):
    """One LLaMA block: pre-norm RMSNorm, grouped-query attention with RoPE, RMSNorm, SwiGLU.

        x <- x + attention(attention_norm(x))
        x <- x + feed_forward(ffn_norm(x))

    ``forward(x (B, T, d), positions=None, mask=None, cache=None) -> (B, T, d)``, the
    arguments as in :class:`GroupedQueryAttention`. Members ``attention_norm``, ``attention``,
    ``ffn_norm``, ``feed_forward`` (Meta's names).
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        c = config
        self.attention_norm = RMSNorm(c.d_model, c.eps)
        self.attention = GroupedQueryAttention(c.d_model, c.n_heads, c.n_kv_heads, c.max_seq_len, c.rope_base,
                                               c.fused)
        self.ffn_norm = RMSNorm(c.d_model, c.eps)
        self.feed_forward = SwiGLU(c.d_model, c.hidden_size)

    def forward(self, x: Tensor, positions: Tensor | None = None, mask: Tensor | None = None,
                cache: LayerCache | None = None) -> Tensor:
        x = x + self.attention(self.attention_norm(x), positions, mask, cache)  # (B, T, d)
        return x + self.feed_forward(self.ffn_norm(x))  # (B, T, d)


class Llama(nn.Module):
    """A LLaMA-style decoder-only model: token embedding, :class:`LlamaBlock` s, a final RMSNorm, an untied head.

    ``forward(idx (B, T), cache=None, positions=None, mask=None) -> logits (B, T, vocab)``; with a
    :class:`~tfcourse.kv_cache.KVCache` it returns ``(logits, cache)`` and ``idx`` holds only
    the new tokens, as :class:`tfcourse.model.GPT` does, so :func:`tfcourse.generation.generate` runs it.
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(LlamaBlock(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model, c.eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def new_cache(self) -> KVCache:
        """An empty cache to pass to :meth:`forward`."""
        return KVCache(self.config.n_layers)

    def forward(self, idx: Tensor, cache: KVCache | None = None, positions: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor | tuple[Tensor, KVCache]:
        x = self.token_embedding(idx)  # (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, mask, None if cache is None else cache[i])  # (B, T, d)
        logits = self.lm_head(self.norm(x))  # (B, T, vocab)
        return logits if cache is None else (logits, cache)


def kv_cache_bytes(cache: KVCache) -> int:
    """The memory a filled cache holds: every layer's keys and values, in bytes."""
    return sum(t.numel() * t.element_size() for layer in cache.layers if layer.keys is not None
               for t in (layer.keys, layer.values))
