"""Lesson 03-multihead: heads, masks, the MultiHeadAttention module, NumPy multi-head attention."""

from __future__ import annotations


import numpy as np
import torch

import tfcourse.np as tnp
from autograder.exercise import Case, CaseContext, Exercise, Mistake, with_dropout
from tfcourse import masks, multihead
from tfcourse.attention import scaled_dot_product_attention

LESSON = "03-multihead"
TORCH_MHA = ("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward",
             "torch.nn.functional.scaled_dot_product_attention")


# --- split_heads / merge_heads ------------------------------------------------------------------

def split_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1, 6, 3), (3, 5, 12, 4)] if hidden else [(2, 4, 8, 2), (1, 3, 12, 3), (2, 1, 6, 6)]
    return [Case(f"(batch {b}, seq {n}, d_model {d}), {h} heads", (ctx.randn(b, n, d), h)) for b, n, d, h in sizes]


def _split_interleaved(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    batch, seq, d_model = x.shape
    return x.view(batch, seq, d_model // n_heads, n_heads).permute(0, 3, 1, 2)


SPLIT_HEADS = Exercise(
    name="split_heads",
    lesson=LESSON,
    reference=multihead.split_heads,
    gradients=True,
    make_cases=split_cases,
    points=1,
    mistakes=(
        Mistake("heads interleaved", _split_interleaved,
                "the features are dealt to heads in turn (feature i to head i % n_heads). Reshape to "
                "(batch, seq, n_heads, d_head) so each head gets a contiguous block."),
        Mistake("missing transpose", lambda x, n: x.view(x.size(0), x.size(1), n, -1),
                "the heads axis must come before the sequence axis: transpose(1, 2) after the view."),
    ),
    hints=("Reshape the last dimension into (n_heads, d_head) with x.view(batch, seq, n_heads, d_head).",
           "Then move the head axis in front of the sequence axis with .transpose(1, 2).",
           "d_head = d_model // n_heads."),
    difficulty=1,
    minutes=5,
)


def merge_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    """Contiguous heads, as attention's output ``weights @ v`` holds them (``x.transpose(1, 2).view(...)`` fails on
    them), and once the transposed view that split_heads returns."""
    split = [(case.label, multihead.split_heads(*case.args)) for case in split_cases(ctx, hidden)]
    first_label, first_heads = split[0]
    return [Case(label, (heads.contiguous(),)) for label, heads in split] + [
        Case(f"{first_label}, as split_heads returns it (a transposed view)", (first_heads,))]


MERGE_HEADS = Exercise(
    name="merge_heads",
    lesson=LESSON,
    reference=multihead.merge_heads,
    gradients=True,
    make_cases=merge_cases,
    points=1,
    mistakes=(
        Mistake("reshape without transpose", lambda x: x.reshape(x.size(0), x.size(2), -1),
                "reshaping before moving the head axis back mixes positions together. transpose(1, 2) first."),
    ),
    hints=("Move the head axis back behind the sequence axis: x.transpose(1, 2).",
           "After a transpose the tensor is not contiguous: use .reshape (or .contiguous().view).",
           "The last dimension becomes n_heads * d_head."),
    difficulty=1,
    minutes=5,
)


# --- masks --------------------------------------------------------------------------------------

def causal_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    lengths = [1, 9] if hidden else [1, 4, 7]
    return [Case(f"seq_len {n}", (n,), {"device": ctx.device}) for n in lengths]


CAUSAL_MASK = Exercise(
    name="causal_mask",
    lesson=LESSON,
    reference=masks.causal_mask,
    make_cases=causal_cases,
    points=1,
    dtypes=(torch.float32,),
    mistakes=(
        Mistake("inverted", lambda n, device=None: ~masks.causal_mask(n, device),
                "True must mean 'may attend': the lower triangle (with the diagonal) is True."),
        Mistake("diagonal excluded", lambda n, device=None: masks.causal_mask(n, device).tril(-1),
                "a position may attend to itself: keep the diagonal (torch.tril with diagonal=0)."),
        Mistake("upper triangle", lambda n, device=None: masks.causal_mask(n, device).T,
                "query i may attend to keys j <= i: that is the lower triangle, torch.tril."),
    ),
    hints=("torch.ones(n, n, dtype=torch.bool, device=device) is the fully visible mask.",
           "torch.tril keeps the lower triangle, diagonal included.",
           "Row i is the query, column j the key."),
    difficulty=1,
    minutes=5,
)


def padding_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 3), (4, 9)] if hidden else [(2, 5), (3, 1), (1, 8)]
    cases = []
    for batch, seq in sizes:
        tokens = ctx.randint(0, 4, batch, seq)
        cases.append(Case(f"tokens ({batch}, {seq}), pad_id 0", (tokens, 0)))
    return cases + [Case("pad_id 3", (ctx.randint(0, 5, 2, 6), 3))]


PADDING_MASK = Exercise(
    name="padding_mask",
    lesson=LESSON,
    reference=masks.padding_mask,
    make_cases=padding_cases,
    points=1,
    dtypes=(torch.float32,),
    mistakes=(
        Mistake("inverted", lambda t, pad_id: ~masks.padding_mask(t, pad_id),
                "True must mark real tokens (tokens != pad_id), not the padding."),
        Mistake("missing broadcast axes", lambda t, pad_id: t != pad_id,
                "the mask must broadcast over heads and queries: shape (batch, 1, 1, seq), e.g. [:, None, None, :]."),
        Mistake("one broadcast axis", lambda t, pad_id: (t != pad_id)[:, None, :],
                "the mask has shape (batch, 1, seq): against scores (batch, heads, q_len, k_len) its batch axis would "
                "line up with the heads. Add two axes: (batch, 1, 1, seq)."),
        Mistake("pad_id ignored", lambda t, pad_id: masks.padding_mask(t, 0),
                "padding is always taken to be id 0: compare the tokens with the `pad_id` argument."),
    ),
    hints=("Compare: tokens != pad_id.", "Add two axes: [:, None, None, :].", "The result is (batch, 1, 1, seq)."),
    difficulty=1,
    minutes=5,
)


# --- MultiHeadAttention --------------------------------------------------------------------------

def mha_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1, 8, 2), (3, 6, 12, 3)] if hidden else [(2, 5, 16, 4), (1, 3, 8, 1), (2, 4, 12, 3)]
    cases = []
    for batch, seq, d_model, heads in sizes:
        x = ctx.randn(batch, seq, d_model)
        cases.append(Case(f"self-attention d_model {d_model}, {heads} heads", (x, x, x), init=(d_model, heads)))
    x, memory = ctx.randn(2, 4, 16), ctx.randn(2, 6, 16)
    keep = ctx.rand_mask(2, 1, 1, 6, keep=0.7)
    keep[..., 0] = True
    causal = torch.ones(4, 4, dtype=torch.bool, device=ctx.device).tril()
    # Keys and values of the query's length but other tensors, and a mask per query: fail code that takes the
    # keys from the query when the lengths agree, the values from the keys, or reshapes the mask to (B, 1, 1, Lk).
    per_query = ctx.rand_mask(2, 1, 4, 4, keep=0.6)
    per_query[..., 0] = True
    cases += [
        Case("cross-attention with padding mask", (x, memory, memory), {"mask": keep}, init=(16, 4)),
        Case("causal self-attention", (x, x, x), {"mask": causal}, init=(16, 2)),
        Case("query, key and value all different, of one length, a mask per query (2, 1, 4, 4)",
             (x, ctx.randn(2, 4, 16), ctx.randn(2, 4, 16)), {"mask": per_query}, init=(16, 4),
             rule="query, key and value are three inputs (the keys come from `key`, the values from `value`, "
                  "whatever their lengths), and `mask` may differ from query to query: (B, 1, Lq, Lk)."),
    ]
    return cases + with_dropout(Case("cross-attention with padding mask, dropout 0.3", (x, memory, memory),
                                     {"mask": keep}, init=(16, 4, 0.3)), ctx)


def _mha_variant(split=multihead.split_heads, query_scale: float = 0.0, project_out: bool = True):
    """The reference's forward with heads split by ``split``, queries multiplied by ``d_head ** query_scale``
    before the attention that divides by sqrt(d_head) (0.5: no scaling; -0.5: scaled twice), and the output
    projection applied or not."""
    def forward(module, query, key, value, mask=None):
        n = module.n_heads
        q, k, v = (split(proj(t), n) for proj, t in ((module.q_proj, query), (module.k_proj, key),
                                                      (module.v_proj, value)))
        if query_scale:
            q = q * q.size(-1) ** query_scale
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = multihead.merge_heads(out) if split is multihead.split_heads else \
            out.permute(0, 2, 3, 1).reshape(query.shape)
        return (module.out_proj(out) if project_out else out), weights
    return forward


MULTI_HEAD_ATTENTION = Exercise(
    name="MultiHeadAttention",
    lesson=LESSON,
    reference=multihead.MultiHeadAttention,
    kind="module",
    make_cases=mha_cases,
    points=3,
    forbidden=TORCH_MHA,
    mistakes=(
        Mistake("no sqrt(d_head) scaling", _mha_variant(query_scale=0.5),
                "the scores are not divided by sqrt(d_head), the width of one head."),
        Mistake("scaled twice", _mha_variant(query_scale=-0.5),
                "the scores are divided by sqrt(d_head) twice, a constant factor too many: "
                "scaled_dot_product_attention already scales them; do not scale the queries yourself."),
        Mistake("heads interleaved", _mha_variant(split=_split_interleaved),
                "each head must take a contiguous block of d_head features; check split_heads."),
        Mistake("missing output projection", _mha_variant(project_out=False),
                "the merged heads must go through out_proj."),
    ),
    hints=(("Project the query with q_proj, the key with k_proj and the value with v_proj, then split each into "
            "heads with your split_heads."),
           ("Attend per head with the given scaled_dot_product_attention (d_k is now d_head) and keep its weights; "
            "the heads' outputs are the weights, after an nn.Dropout, times v."),
           "merge_heads, then self.out_proj; return (output, weights), the weights before dropout, of shape "
           "(B, heads, Lq, Lk)."),
    difficulty=3,
    minutes=30,
)


# --- NumPy multi-head attention ------------------------------------------------------------------

def numpy_mha_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 4, 6, 3)] if hidden else [(2, 5, 8, 2), (1, 3, 12, 4)]
    cases = []
    for batch, seq, d_model, heads in sizes:
        weights = tuple(ctx.randn(d_model, d_model, scale=d_model ** -0.5) for _ in range(4))
        mask = torch.ones(seq, seq, dtype=torch.bool).tril()
        cases.append(Case(f"d_model {d_model}, {heads} heads, causal", (ctx.randn(batch, seq, d_model), *weights,
                                                                        heads), {"mask": mask.numpy()}))
    weights = tuple(ctx.randn(8, 8, scale=8 ** -0.5) for _ in range(4))
    return cases + [Case("d_model 8, 4 heads, no mask", (ctx.randn(2, 3, 8), *weights, 4))]


def _numpy_mha_without_out(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    return tnp.multi_head_attention(x, w_q, w_k, w_v, np.eye(w_o.shape[0], dtype=w_o.dtype), n_heads, mask)


def _numpy_mha_scaled_by_d_model(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    """Scores divided by sqrt(d_model): the reference with queries scaled by sqrt(d_head / d_model)."""
    shrink = np.sqrt(n_heads ** -1.0).astype(x.dtype)
    return tnp.multi_head_attention(x, w_q * shrink, w_k, w_v, w_o, n_heads, mask)


def numpy_heads_reshaped(split_by_reshape: bool, merge_by_reshape: bool):
    """NumPy attention of queries from ``x`` on keys and values from ``memory`` with heads split into (batch,
    n_heads, len, d_head), or merged back, by a reshape alone, without the transpose that keeps each token's
    features together."""
    def attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
        def split(t):
            batch, length, d_model = t.shape
            return t.reshape(batch, n_heads, length, d_model // n_heads) if split_by_reshape else \
                tnp.split_heads(t, n_heads)
        heads, weights = tnp.scaled_dot_product_attention(split(x @ w_q), split(memory @ w_k), split(memory @ w_v),
                                                         mask)
        merged = heads.reshape(x.shape) if merge_by_reshape else tnp.merge_heads(heads)
        return merged @ w_o, weights
    return attention


def _numpy_mha_heads_reshaped(split_by_reshape: bool, merge_by_reshape: bool):
    attention = numpy_heads_reshaped(split_by_reshape, merge_by_reshape)
    return lambda x, w_q, w_k, w_v, w_o, n_heads, mask=None: attention(x, x, w_q, w_k, w_v, w_o, n_heads, mask)


RESHAPE_WITHOUT_TRANSPOSE = (  # the mistake's explanation, for every NumPy attention with heads"a reshape alone does not move the heads: (batch, seq, d_model) reshaped to (batch, "
                             "n_heads, seq, d_head) mixes features of different tokens. Reshape to (batch, seq, "
                             "n_heads, d_head), then transpose axes 1 and 2 (and the reverse to merge).")


NUMPY_MULTI_HEAD_ATTENTION = Exercise(
    name="numpy_multi_head_attention",
    lesson=LESSON,
    reference=tnp.multi_head_attention,
    make_cases=numpy_mha_cases,
    points=2,
    numpy=True,
    mistakes=(
        Mistake("missing output projection", _numpy_mha_without_out, "multiply the merged heads by w_o."),
        Mistake("scaled by sqrt(d_model)", _numpy_mha_scaled_by_d_model,
                "the scores are divided by sqrt(d_model). Each head compares vectors of width d_head = d_model // "
                "n_heads: divide by sqrt(d_head)."),
        Mistake("mask ignored", lambda x, w_q, w_k, w_v, w_o, n_heads, mask=None:
                tnp.multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads),
                "the mask has no effect: scores where the mask is False must become -inf before the softmax."),
        Mistake("heads split and merged without a transpose", _numpy_mha_heads_reshaped(True, True),
                RESHAPE_WITHOUT_TRANSPOSE),
        Mistake("heads split without a transpose", _numpy_mha_heads_reshaped(True, False), RESHAPE_WITHOUT_TRANSPOSE),
        Mistake("heads merged without a transpose", _numpy_mha_heads_reshaped(False, True), RESHAPE_WITHOUT_TRANSPOSE),
    ),
    hints=("x @ w_q gives all heads' queries at once; reshape to (batch, seq, n_heads, d_head).",
           "np.transpose(..., (0, 2, 1, 3)) puts the heads before the sequence.",
           "Reuse your NumPy attention per head, then merge and multiply by w_o."),
    difficulty=3,
    minutes=25,
)

EXERCISES = (SPLIT_HEADS, MERGE_HEADS, CAUSAL_MASK, PADDING_MASK, MULTI_HEAD_ATTENTION, NUMPY_MULTI_HEAD_ATTENTION)
