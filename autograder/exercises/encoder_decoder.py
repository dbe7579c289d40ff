"""Lesson 05-encoder-decoder: cross-attention and an encoder layer in NumPy, the encoder and
decoder layers as modules, and their stacks."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tfcourse.np as tnp
from autograder.exercise import Case, CaseContext, Exercise, Mistake, with_dropout
from autograder.exercises.multihead import RESHAPE_WITHOUT_TRANSPOSE, numpy_heads_reshaped
from tfcourse import encoder_decoder as ref
from tfcourse.layers import ResidualConnection

LESSON = "05-encoder-decoder"
TORCH_TRANSFORMER = ("torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer",
                     "torch.nn.TransformerEncoder", "torch.nn.TransformerDecoder", "torch.nn.Transformer")


def _padding(ctx: CaseContext, batch: int, length: int) -> Tensor:
    """A ``(batch, 1, 1, length)`` keep-mask with about 70% True; position 0 is always visible."""
    keep = ctx.rand_mask(batch, 1, 1, length, keep=0.7)
    keep[..., 0] = True
    return keep


def _causal(ctx: CaseContext, length: int) -> Tensor:
    return torch.ones(length, length, dtype=torch.bool, device=ctx.device).tril()


def _per_query(ctx: CaseContext, batch: int, q_len: int, k_len: int) -> Tensor:
    """A ``(batch, 1, q_len, k_len)`` keep-mask that differs from query to query; key 0 is always visible."""
    keep = ctx.rand_mask(batch, 1, q_len, k_len, keep=0.6)
    keep[..., 0] = True
    return keep


MASK_PER_QUERY = ("`mask` broadcasts to (batch, heads, q_len, k_len): it may differ from query to query, "
                  "(batch, 1, q_len, k_len), not only hide keys, (batch, 1, 1, k_len).")
KEYS_FROM_MEMORY = ("the keys and values come from `memory`, whatever the lengths: also when q_len == k_len, "
                    "memory is not x.")


def _arrangement(norm_first: bool) -> str:
    return "pre-LN" if norm_first else "post-LN"


# --- NumPy cross-attention -----------------------------------------------------------------------

def numpy_cross_attention_reference(
    x: np.ndarray, memory: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray,
    n_heads: int, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head attention whose queries come from ``x`` and keys and values from ``memory``.

        CrossAttention(X, M) = Concat(head_1, ..., head_h) W_O,  head_i = Attention(X W_Q^i, M W_K^i, M W_V^i)

    ``x``: ``(batch, q_len, d_model)`` (the decoder), ``memory``: ``(batch, k_len, d_model)``
    (the encoder's output), weights ``(d_model, d_model)`` applied as ``x @ w``; ``mask`` bool,
    broadcastable to ``(batch, heads, q_len, k_len)``. Returns ``(output (batch, q_len, d_model),
    weights (batch, heads, q_len, k_len))``.
    """
    q = tnp.split_heads(x @ w_q, n_heads)
    k, v = (tnp.split_heads(memory @ w, n_heads) for w in (w_k, w_v))
    heads, weights = tnp.scaled_dot_product_attention(q, k, v, mask)
    return tnp.merge_heads(heads) @ w_o, weights


def numpy_cross_attention_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 5, 2, 6, 3, False), (3, 1, 4, 8, 2, True)] if hidden else \
        [(2, 4, 6, 8, 2, False), (1, 3, 5, 12, 4, False), (2, 3, 5, 8, 2, True)]
    cases = []
    for batch, q_len, k_len, d_model, heads, masked in sizes:
        weights = tuple(ctx.randn(d_model, d_model, scale=d_model ** -0.5) for _ in range(4))
        x, memory = ctx.randn(batch, q_len, d_model), ctx.randn(batch, k_len, d_model)
        label = f"decoder {(batch, q_len, d_model)}, memory {(batch, k_len, d_model)}, {heads} heads"
        masks = {"mask": _padding(ctx, batch, k_len).cpu().numpy()} if masked else {}
        cases.append(Case(label + (", memory padding mask" if masked else ""), (x, memory, *weights, heads), masks))
    # A mask per query, (batch, 1, q_len, k_len), fails code that reshapes it to (batch, 1, 1, k_len); equal
    # lengths fail code that tells the memory from x by its length.
    (batch, q_len, k_len, d_model, heads), equal = ((3, 4, 2, 6, 3), (1, 5, 12, 4)) if hidden else \
        ((2, 3, 5, 8, 2), (2, 4, 8, 2))
    weights = tuple(ctx.randn(d_model, d_model, scale=d_model ** -0.5) for _ in range(4))
    per_query = _per_query(ctx, batch, q_len, k_len).cpu().numpy()
    cases.append(Case(f"decoder {(batch, q_len, d_model)}, memory {(batch, k_len, d_model)}, {heads} heads, "
                      f"a mask per query {per_query.shape}",
                      (ctx.randn(batch, q_len, d_model), ctx.randn(batch, k_len, d_model), *weights, heads),
                      {"mask": per_query}, rule=MASK_PER_QUERY))
    batch, length, d_model, heads = equal
    weights = tuple(ctx.randn(d_model, d_model, scale=d_model ** -0.5) for _ in range(4))
    cases.append(Case(f"decoder and memory of the same length {(batch, length, d_model)}, {heads} heads",
                      (ctx.randn(batch, length, d_model), ctx.randn(batch, length, d_model), *weights, heads),
                      rule=KEYS_FROM_MEMORY))
    return cases


def _cross_attention_variant(keys_from_decoder: bool = False, queries_from_memory: bool = False,
                             scale_by_d_model: bool = False, project_out: bool = True, transposed: bool = False):
    """A wrong cross-attention: K, V from the decoder, Q from the encoder, sqrt(d_model) scaling, no W_O, or the
    weights applied in ``nn.Linear``'s layout, ``x @ w.T``."""
    def attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
        if transposed:
            w_q, w_k, w_v, w_o = w_q.T, w_k.T, w_v.T, w_o.T
        if keys_from_decoder:
            memory = x
        if queries_from_memory:
            x, memory = memory, x
        if scale_by_d_model:  # q k^T / sqrt(d_head) * sqrt(d_head / d_model) = q k^T / sqrt(d_model)
            w_q = w_q / math.sqrt(n_heads)
        if not project_out:
            w_o = np.eye(w_o.shape[0], dtype=w_o.dtype)
        return numpy_cross_attention_reference(x, memory, w_q, w_k, w_v, w_o, n_heads, mask)
    return attention


NUMPY_CROSS_ATTENTION = Exercise(
    name="numpy_cross_attention",
    lesson=LESSON,
    reference=numpy_cross_attention_reference,
    make_cases=numpy_cross_attention_cases,
    points=2,
    numpy=True,
    mistakes=(
        Mistake("keys and values from the decoder", _cross_attention_variant(keys_from_decoder=True),
                "keys and values must come from `memory` (the encoder's output); only the queries come from x."),
        Mistake("queries from the encoder", _cross_attention_variant(queries_from_memory=True),
                "the queries come from the decoder (x @ w_q), the keys and values from the encoder "
                "(memory @ w_k, memory @ w_v): one output row per decoder position."),
        Mistake("scaled by sqrt(d_model)", _cross_attention_variant(scale_by_d_model=True),
                "each head compares d_head-dimensional vectors: divide its scores by sqrt(d_head), "
                "not sqrt(d_model)."),
        Mistake("missing output projection", _cross_attention_variant(project_out=False),
                "multiply the merged heads by w_o."),
        Mistake("weights transposed", _cross_attention_variant(transposed=True),
                "the weights are (d_model, d_model) arrays applied as x @ w; x @ w.T is nn.Linear's layout "
                "(its weight is (out, in)), which these arrays are not in."),
        Mistake("heads split and merged without a transpose", numpy_heads_reshaped(True, True),
                RESHAPE_WITHOUT_TRANSPOSE),
        Mistake("heads split without a transpose", numpy_heads_reshaped(True, False), RESHAPE_WITHOUT_TRANSPOSE),
        Mistake("heads merged without a transpose", numpy_heads_reshaped(False, True), RESHAPE_WITHOUT_TRANSPOSE),
    ),
    hints=(
        "It is your multi-head attention with two inputs: the queries are projected from `x` with `w_q`, the keys "
        "and values from `memory` with `w_k` and `w_v`.",
        "Split each projection into heads, (batch, len, d_model) -> (batch, heads, len, d_head): reshape to (batch,"
        " len, heads, d_head), then move the head axis forward with `.transpose(0, 2, 1, 3)`. q and k may have "
        "different lengths; `numpy_attention` handles that.",
        "out, weights = numpy_attention(q, k, v, mask); merge the heads with out.transpose(0, 2, 1, "
        "3).reshape(batch, q_len, d_model), multiply by w_o and return (output, weights).",
    ),
    difficulty=2,
    minutes=15,
)


# --- NumPy encoder layer -------------------------------------------------------------------------

def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def numpy_encoder_layer_reference(x: np.ndarray, params: dict[str, np.ndarray], n_heads: int,
                                  mask: np.ndarray | None = None, *, norm_first: bool = False,
                                  residual: bool = True, use_mask: bool = True,
                                  layer_norm: Callable = tnp.layer_norm, relu: Callable = _relu) -> np.ndarray:
    """The original (post-LN) encoder layer in NumPy, ``(batch, seq, d_model) -> (batch, seq, d_model)``:

        h = LN_1(x + SelfAttention(x)),   out = LN_2(h + FFN(h)),   FFN(h) = max(0, h W_1 + b_1) W_2 + b_2

    ``params`` holds ``w_q``, ``w_k``, ``w_v``, ``w_o`` ``(d_model, d_model)``, ``w1`` ``(d_model, d_ff)``,
    ``b1``, ``w2`` ``(d_ff, d_model)``, ``b2`` and the LayerNorms' ``norm1_weight``, ``norm1_bias``,
    ``norm2_weight``, ``norm2_bias``; weights are applied as ``x @ w``. The keyword options make the
    known wrong versions.
    """
    def attend(h: np.ndarray) -> np.ndarray:
        weights = (params["w_q"], params["w_k"], params["w_v"], params["w_o"])
        return tnp.multi_head_attention(h, *weights, n_heads, mask if use_mask else None)[0]

    def feed_forward(h: np.ndarray) -> np.ndarray:
        return relu(h @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]

    for sublayer, norm in ((attend, "norm1"), (feed_forward, "norm2")):
        weight, bias = params[f"{norm}_weight"], params[f"{norm}_bias"]
        kept = x if residual else 0.0
        if norm_first:
            x = kept + sublayer(layer_norm(x, weight, bias))
        else:
            x = layer_norm(kept + sublayer(x), weight, bias)
    return x


def _unbiased_layer_norm(z: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm with the unbiased variance (divided by d - 1)."""
    centred = z - z.mean(-1, keepdims=True)
    return centred / np.sqrt(z.var(-1, ddof=1, keepdims=True) + eps) * weight + bias


def _max_over_axis_0(z: np.ndarray) -> np.ndarray:
    """``np.max(z, 0)``: the largest value along axis 0, where a ReLU (``np.maximum(z, 0)``) was meant."""
    return np.max(z, 0)


def _first_norm_twice(x: np.ndarray, params: dict[str, np.ndarray], n_heads: int,
                      mask: np.ndarray | None = None) -> np.ndarray:
    """The encoder layer with norm1's parameters in both LayerNorms."""
    both = {**params, "norm2_weight": params["norm1_weight"], "norm2_bias": params["norm1_bias"]}
    return numpy_encoder_layer_reference(x, both, n_heads, mask)


def _encoder_params(ctx: CaseContext, d_model: int, d_ff: int) -> dict[str, np.ndarray]:
    """Weights applied as ``x @ w`` (scaled so activations stay near unit size), biases, LayerNorm scales."""
    def matrix(rows: int, cols: int) -> Tensor:
        return ctx.randn(rows, cols, scale=rows ** -0.5)

    params = {name: matrix(d_model, d_model) for name in ("w_q", "w_k", "w_v", "w_o")}
    params.update(w1=matrix(d_model, d_ff), b1=ctx.randn(d_ff, scale=0.1),
                  w2=matrix(d_ff, d_model), b2=ctx.randn(d_model, scale=0.1))
    for norm in ("norm1", "norm2"):
        params[f"{norm}_weight"] = 1.0 + ctx.randn(d_model, scale=0.2)
        params[f"{norm}_bias"] = ctx.randn(d_model, scale=0.2)
    return {name: value.cpu().numpy() for name, value in params.items()}


def numpy_encoder_layer_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 6, 6, 12, 3, True)] if hidden else [(2, 4, 8, 16, 2, False), (1, 5, 12, 24, 4, False),
                                                     (2, 5, 8, 16, 2, True)]
    cases = []
    for batch, seq, d_model, d_ff, heads, masked in sizes:
        label = f"x {(batch, seq, d_model)}, d_ff {d_ff}, {heads} heads" + (", padding mask" if masked else "")
        masks = {"mask": _padding(ctx, batch, seq).cpu().numpy()} if masked else {}
        cases.append(Case(label, (ctx.randn(batch, seq, d_model), _encoder_params(ctx, d_model, d_ff), heads), masks))
    batch, seq, d_model, d_ff, heads = (1, 4, 6, 12, 2) if hidden else (2, 5, 8, 16, 2)
    per_query = _per_query(ctx, batch, seq, seq).cpu().numpy()
    cases.append(Case(f"x {(batch, seq, d_model)}, d_ff {d_ff}, {heads} heads, a mask per query {per_query.shape}",
                      (ctx.randn(batch, seq, d_model), _encoder_params(ctx, d_model, d_ff), heads),
                      {"mask": per_query}, rule=MASK_PER_QUERY))
    return cases


NUMPY_ENCODER_LAYER = Exercise(
    name="numpy_encoder_layer",
    lesson=LESSON,
    reference=numpy_encoder_layer_reference,
    make_cases=numpy_encoder_layer_cases,
    points=3,
    numpy=True,
    mistakes=(
        Mistake("pre-LN instead of post-LN", partial(numpy_encoder_layer_reference, norm_first=True),
                "this layer normalises each sublayer's input (pre-LN). The original encoder normalises "
                "after adding: LN(x + sublayer(x))."),
        Mistake("no residual connections", partial(numpy_encoder_layer_reference, residual=False),
                "each sublayer's output is added to its input before the norm: LN(x + sublayer(x))."),
        Mistake("mask ignored", partial(numpy_encoder_layer_reference, use_mask=False),
                "pass `mask` to the self-attention, so no position attends to padding."),
        Mistake("LayerNorm with the unbiased variance", partial(numpy_encoder_layer_reference,
                                                                layer_norm=_unbiased_layer_norm),
                "LayerNorm divides by the biased variance, h.var(-1) (a mean over d_model), not the unbiased one "
                "(ddof=1, divided by d_model - 1)."),
        Mistake("np.max instead of np.maximum", partial(numpy_encoder_layer_reference, relu=_max_over_axis_0),
                "np.max(z, 0) is the largest value along axis 0 (a reduction over the batch); the ReLU is the "
                "elementwise np.maximum(z, 0)."),
        Mistake("norm1's parameters in both LayerNorms", _first_norm_twice,
                "each LayerNorm has its own parameters: the second sublayer is normalised with norm2_weight and "
                "norm2_bias."),
    ),
    hints=(
        "Two sublayers, each in the same post-LN wrapper: add the sublayer's output to its input, then normalise. "
        "Self-attention first (with the `norm1_*` parameters), then the feed-forward network (with `norm2_*`).",
        "Self-attention is cross-attention of x with itself: call your `numpy_cross_attention` with x as both "
        "inputs and `mask`, and keep only the output. The LayerNorm averages over the last axis with "
        "`keepdims=True` and uses the biased variance.",
        "h = layer_norm(x + numpy_cross_attention(x, x, ..., mask)[0], norm1); layer_norm is (h - h.mean(-1, "
        "keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) * weight + bias; FFN: np.maximum(h @ w1 + b1, "
        "0) @ w2 + b2.",
    ),
    difficulty=3,
    minutes=25,
)


# --- EncoderLayer / DecoderLayer -----------------------------------------------------------------

def _sizes(hidden: bool) -> list[tuple[int, int, int, int]]:
    """``(batch, d_model, n_heads, d_ff)``: the hidden set differs from the visible one."""
    return [(3, 12, 3, 24), (1, 8, 1, 8)] if hidden else [(2, 16, 4, 32), (1, 8, 2, 16)]


def encoder_layer_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = []
    for (batch, d_model, heads, d_ff), seq, norm_first in zip(_sizes(hidden), (5, 3), (False, True)):
        label = f"{_arrangement(norm_first)}, x {(batch, seq, d_model)}, {heads} heads, d_ff {d_ff}"
        cases.append(Case(label, (ctx.randn(batch, seq, d_model),), init=(d_model, heads, d_ff, 0.0, norm_first)))
    for norm_first in (False, True):
        cases.append(Case(f"{_arrangement(norm_first)}, padding mask", (ctx.randn(2, 6, 16),),
                          {"mask": _padding(ctx, 2, 6)}, init=(16, 4, 32, 0.0, norm_first)))
    for norm_first in (False, True):
        cases += with_dropout(Case(f"{_arrangement(norm_first)}, padding mask, dropout 0.2", (ctx.randn(2, 6, 16),),
                                   {"mask": _padding(ctx, 2, 6)}, init=(16, 4, 32, 0.2, norm_first)), ctx)
    return cases


def _residual(connection: ResidualConnection, x: Tensor, sublayer: Callable[[Tensor], Tensor],
              skip: bool = True, swap: bool = False) -> Tensor:
    """``connection(x, sublayer)``, optionally without the skip path or with pre- and post-LN swapped."""
    kept = x if skip else torch.zeros_like(x)
    if connection.norm_first != swap:
        return kept + sublayer(connection.norm(x))
    return connection.norm(kept + sublayer(x))


def _run_sublayers(x: Tensor, steps: list[tuple[ResidualConnection, Callable]], skip: bool, swap: bool) -> Tensor:
    for connection, sublayer in steps:
        x = _residual(connection, x, sublayer, skip, swap)
    return x


def _encoder_layer_variant(use_mask: bool = True, skip: bool = True, swap: bool = False, ff_first: bool = False):
    """A wrong ``EncoderLayer.forward``, called with the reference layer as first argument."""
    def forward(layer, x, mask=None):
        def attend(h):
            return layer.self_attn(h, h, h, mask if use_mask else None)[0]

        steps = [(layer.self_attn_residual, attend), (layer.ff_residual, layer.ff)]
        return _run_sublayers(x, steps[::-1] if ff_first else steps, skip, swap)
    return forward


ENCODER_LAYER = Exercise(
    name="EncoderLayer",
    lesson=LESSON,
    reference=ref.EncoderLayer,
    kind="module",
    make_cases=encoder_layer_cases,
    points=3,
    forbidden=TORCH_TRANSFORMER,
    mistakes=(
        Mistake("mask ignored", _encoder_layer_variant(use_mask=False),
                "pass `mask` on to the self-attention, so that no position attends to padding."),
        Mistake("no residual connections", _encoder_layer_variant(skip=False),
                "wrap each sublayer in its ResidualConnection, which adds the sublayer's input back: "
                "self.self_attn_residual(x, sublayer)."),
        Mistake("pre-LN and post-LN swapped", _encoder_layer_variant(swap=True),
                "norm_first=False is the original post-LN layer, norm(x + sublayer(x)); norm_first=True is "
                "pre-LN, x + sublayer(norm(x)). Pass norm_first to the ResidualConnections unchanged."),
        Mistake("feed-forward before self-attention", _encoder_layer_variant(ff_first=True),
                "self-attention comes first (it mixes positions), then the position-wise feed-forward network."),
    ),
    hints=(
        "In `__init__`, after `super().__init__()`: a `MultiHeadAttention` named `self_attn`, a `FeedForward` named"
        " `ff`, and one `ResidualConnection` per sublayer, each given `dropout` and `norm_first`.",
        "A ResidualConnection takes the sublayer as a function of one tensor, h (in pre-LN, the normalised input). "
        "Self-attention needs three arguments and returns (output, weights): wrap it in a lambda of h that keeps "
        "only the output.",
        "forward: x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, mask)[0]); then return "
        "self.ff_residual(x, self.ff).",
    ),
    difficulty=2,
    minutes=20,
)


def decoder_layer_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = []
    for (batch, d_model, heads, d_ff), (tgt_len, src_len), norm_first in zip(_sizes(hidden), ((4, 6), (3, 2)),
                                                                             (False, True)):
        label = (f"{_arrangement(norm_first)}, x {(batch, tgt_len, d_model)}, memory {(batch, src_len, d_model)}, "
                 f"{heads} heads")
        cases.append(Case(label, (ctx.randn(batch, tgt_len, d_model), ctx.randn(batch, src_len, d_model)),
                          init=(d_model, heads, d_ff, 0.0, norm_first)))

    def masked(label: str, norm_first: bool, tgt: bool, memory: bool, dropout: float = 0.0) -> Case:
        masks = {"tgt_mask": _causal(ctx, 5)} if tgt else {}
        if memory:
            masks["memory_mask"] = _padding(ctx, 2, 7)
        return Case(f"{_arrangement(norm_first)}, {label}", (ctx.randn(2, 5, 16), ctx.randn(2, 7, 16)), masks,
                    init=(16, 4, 32, dropout, norm_first))

    cases += [masked("causal tgt_mask", False, tgt=True, memory=False),
              masked("memory padding mask", True, tgt=False, memory=True),
              masked("causal tgt_mask and memory padding mask", True, tgt=True, memory=True)]
    # x and memory of one length, and a tgt_mask per sequence and query (causal and padding, (B, 1, Lt, Lt)).
    tgt_mask = _causal(ctx, 5) & _padding(ctx, 2, 5)
    cases.append(Case("post-LN, x and memory of the same length (2, 5, 16), causal-and-padding tgt_mask "
                      "(2, 1, 5, 5), memory padding mask", (ctx.randn(2, 5, 16), ctx.randn(2, 5, 16)),
                      {"tgt_mask": tgt_mask, "memory_mask": _padding(ctx, 2, 5)}, init=(16, 4, 32, 0.0, False),
                      rule=KEYS_FROM_MEMORY))
    return cases + [c for norm_first in (False, True) for c in with_dropout(
        masked("both masks, dropout 0.2", norm_first, tgt=True, memory=True, dropout=0.2), ctx)]


def _decoder_layer_variant(use_tgt_mask: bool = True, use_memory_mask: bool = True, cross_reads_memory: bool = True,
                           cross_first: bool = False):
    """A wrong ``DecoderLayer.forward``, called with the reference layer as first argument."""
    def forward(layer, x, memory, tgt_mask=None, memory_mask=None):
        def self_attend(h):
            return layer.self_attn(h, h, h, tgt_mask if use_tgt_mask else None)[0]

        def cross_attend(h):
            if not cross_reads_memory:
                return layer.cross_attn(h, h, h)[0]
            return layer.cross_attn(h, memory, memory, memory_mask if use_memory_mask else None)[0]

        steps = [(layer.self_attn_residual, self_attend), (layer.cross_attn_residual, cross_attend),
                 (layer.ff_residual, layer.ff)]
        if cross_first:
            steps[0], steps[1] = steps[1], steps[0]
        return _run_sublayers(x, steps, skip=True, swap=False)
    return forward


DECODER_LAYER = Exercise(
    name="DecoderLayer",
    lesson=LESSON,
    reference=ref.DecoderLayer,
    kind="module",
    make_cases=decoder_layer_cases,
    points=3,
    forbidden=TORCH_TRANSFORMER,
    mistakes=(
        Mistake("tgt_mask ignored", _decoder_layer_variant(use_tgt_mask=False),
                "the masked self-attention must use tgt_mask, or each position sees the tokens after it."),
        Mistake("memory_mask ignored", _decoder_layer_variant(use_memory_mask=False),
                "the cross-attention must use memory_mask, so that no position attends to source padding."),
        Mistake("cross-attention reads the decoder", _decoder_layer_variant(cross_reads_memory=False),
                "in cross-attention the queries come from the decoder but the keys and values from `memory`: "
                "self.cross_attn(h, memory, memory, memory_mask)."),
        Mistake("cross-attention before self-attention", _decoder_layer_variant(cross_first=True),
                "the order is masked self-attention, then cross-attention, then the feed-forward network."),
    ),
    hints=(
        "Like EncoderLayer, with a second `MultiHeadAttention`, `cross_attn`, and a third ResidualConnection, "
        "`cross_attn_residual`, between self-attention and feed-forward.",
        "Self-attention reads h three times and uses `tgt_mask`; cross-attention takes its queries from h but its "
        "keys and values from `memory`, with `memory_mask`. The residual normalises h, the decoder's stream; "
        "`memory` goes into the cross-attention as it is.",
        "x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0]); x = "
        "self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0]); return "
        "self.ff_residual(x, self.ff).",
    ),
    difficulty=2,
    minutes=25,
)


# --- Encoder / Decoder stacks ----------------------------------------------------------------------

def _stack_settings(hidden: bool) -> list[tuple[int, bool, bool]]:
    """``(n_layers, norm_first, masked)`` of each stack case."""
    return [(3, True, True), (1, False, False)] if hidden else [(2, False, True), (3, True, False), (2, True, True)]


def encoder_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = []
    for n_layers, norm_first, mask in _stack_settings(hidden):
        masks = {"mask": _padding(ctx, 2, 5)} if mask else {}
        label = f"{n_layers} {_arrangement(norm_first)} layers" + (", padding mask" if mask else "")
        cases.append(Case(label, (ctx.randn(2, 5, 16),), masks, init=(n_layers, 16, 4, 32, 0.0, norm_first)))
    return cases + with_dropout(Case("2 pre-LN layers, padding mask, dropout 0.2", (ctx.randn(2, 5, 16),),
                                     {"mask": _padding(ctx, 2, 5)}, init=(2, 16, 4, 32, 0.2, True)), ctx)


def decoder_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = []
    for n_layers, norm_first, mask in _stack_settings(hidden):
        masks = {"tgt_mask": _causal(ctx, 4), "memory_mask": _padding(ctx, 2, 6)} if mask else {}
        label = f"{n_layers} {_arrangement(norm_first)} layers" + (", causal and memory masks" if mask else "")
        cases.append(Case(label, (ctx.randn(2, 4, 16), ctx.randn(2, 6, 16)), masks,
                          init=(n_layers, 16, 4, 32, 0.0, norm_first)))
    masks = {"tgt_mask": _causal(ctx, 4), "memory_mask": _padding(ctx, 2, 6)}
    return cases + with_dropout(Case("2 post-LN layers, causal and memory masks, dropout 0.2",
                                     (ctx.randn(2, 4, 16), ctx.randn(2, 6, 16)), masks,
                                     init=(2, 16, 4, 32, 0.2, False)), ctx)


def _stack_variant(final_norm: bool = True, pass_masks: bool = True, chain: bool = True, repeat_last: bool = False,
                   dropped_masks: tuple[str, ...] = (), post_ln_norm: bool = False):
    """A wrong ``Encoder.forward`` / ``Decoder.forward``, called with the reference stack as first argument.

    ``repeat_last`` is what ``nn.ModuleList([layer] * n_layers)`` computes: one layer object n times,
    holding the weights loaded last. ``dropped_masks`` are not passed on to the layers; ``post_ln_norm``
    ends a post-LN stack with a LayerNorm too (a fresh one: weight 1, bias 0).
    """
    def forward(stack, x, *memory, **masks):
        layers = [stack.layers[-1]] * len(stack.layers) if repeat_last else list(stack.layers)
        passed = {name: mask for name, mask in masks.items() if pass_masks and name not in dropped_masks}
        out = x
        for layer in layers:
            out = layer(out if chain else x, *memory, **passed)
        if post_ln_norm and isinstance(stack.norm, nn.Identity):
            return F.layer_norm(out, out.shape[-1:])
        return stack.norm(out) if final_norm else out
    return forward


_REPEATED_LAYER = ("the stack holds one layer object n_layers times ([layer] * n_layers), so all layers share "
                   "weights. Build a new layer for each position: nn.ModuleList(Layer(...) for _ in range(n_layers)).")
_UNCHAINED = "each layer must read the previous layer's output: x = layer(x, ...) inside the loop."
_NO_FINAL_NORM = ("a pre-LN stack leaves its last residual stream unnormalised: end with self.norm "
                  "(a LayerNorm when norm_first, nn.Identity() otherwise).")
_POST_LN_FINAL_NORM = ("a post-LN stack needs no final norm: each of its layers already ends with a LayerNorm. "
                       "self.norm is LayerNorm(d_model) only when norm_first, nn.Identity() otherwise.")

ENCODER = Exercise(
    name="Encoder",
    lesson=LESSON,
    reference=ref.Encoder,
    kind="module",
    make_cases=encoder_cases,
    points=2,
    forbidden=TORCH_TRANSFORMER,
    mistakes=(
        Mistake("no final norm in a pre-LN stack", _stack_variant(final_norm=False), _NO_FINAL_NORM),
        Mistake("a final norm in a post-LN stack", _stack_variant(post_ln_norm=True), _POST_LN_FINAL_NORM),
        Mistake("mask not passed to the layers", _stack_variant(pass_masks=False),
                "give every layer the mask: layer(x, mask)."),
        Mistake("one layer repeated", _stack_variant(repeat_last=True), _REPEATED_LAYER),
        Mistake("every layer reads the stack's input", _stack_variant(chain=False), _UNCHAINED),
    ),
    hints=(
        "`layers` is an `nn.ModuleList` of n_layers separate EncoderLayers, each given `norm_first`: build a new "
        "one per position (one object repeated would share its weights).",
        "`norm` is a `LayerNorm(d_model)` when norm_first, else `nn.Identity()`: pre-LN layers leave the stream "
        "unnormalised, so the stack normalises once at the end; post-LN layers already end with a norm.",
        "self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in "
        "range(n_layers)); forward: for layer in self.layers: x = layer(x, mask); then return self.norm(x).",
    ),
    difficulty=1,
    minutes=10,
)

DECODER = Exercise(
    name="Decoder",
    lesson=LESSON,
    reference=ref.Decoder,
    kind="module",
    make_cases=decoder_cases,
    points=2,
    forbidden=TORCH_TRANSFORMER,
    mistakes=(
        Mistake("no final norm in a pre-LN stack", _stack_variant(final_norm=False), _NO_FINAL_NORM),
        Mistake("a final norm in a post-LN stack", _stack_variant(post_ln_norm=True), _POST_LN_FINAL_NORM),
        Mistake("masks not passed to the layers", _stack_variant(pass_masks=False),
                "give every layer both masks: layer(x, memory, tgt_mask, memory_mask)."),
        Mistake("memory_mask not passed to the layers", _stack_variant(dropped_masks=("memory_mask",)),
                "give every layer memory_mask too, layer(x, memory, tgt_mask, memory_mask), or its "
                "cross-attention attends to the source's padding."),
        Mistake("one layer repeated", _stack_variant(repeat_last=True), _REPEATED_LAYER),
        Mistake("every layer reads the stack's input", _stack_variant(chain=False), _UNCHAINED),
    ),
    hints=(
        "The same shape as Encoder: DecoderLayers in an `nn.ModuleList`, and the same final `norm`.",
        "Every layer reads the same `memory`, the encoder's final output, and both masks; only x changes from layer"
        " to layer.",
        "forward: for layer in self.layers: x = layer(x, memory, tgt_mask, memory_mask); return self.norm(x).",
    ),
    difficulty=1,
    minutes=10,
)

EXERCISES = (NUMPY_CROSS_ATTENTION, NUMPY_ENCODER_LAYER, ENCODER_LAYER, DECODER_LAYER, ENCODER, DECODER)
