"""Lesson 02-attention: softmax, scores, scaled dot-product attention, entropy, NumPy attention."""

from __future__ import annotations

import math

import numpy as np
import torch

import tfcourse.np as tnp
from autograder.exercise import Case, CaseContext, Exercise, Mistake
from tfcourse import attention as ref

LESSON = "02-attention"
SOFTMAX_APIS = ("torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
                "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax", "torch.log_softmax")
FUSED_ATTENTION = ("torch.nn.functional.scaled_dot_product_attention",)


def _shapes(hidden: bool) -> list[tuple[int, ...]]:
    """Batch-first ``(batch, heads, length, width)`` shapes: the hidden set differs from the visible one."""
    return [(1, 1, 1, 4), (3, 2, 5, 7)] if hidden else [(2, 3, 4, 8), (1, 2, 7, 5), (2, 1, 1, 6)]


# --- softmax -----------------------------------------------------------------------------------

def softmax_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"random {shape}", (ctx.randn(*shape),)) for shape in _shapes(hidden)]
    x = ctx.randn(3, 6)
    masked = x.masked_fill(ctx.rand_mask(3, 6, keep=0.3) & (torch.arange(6, device=x.device) > 0), float("-inf"))
    fully_masked = x.clone()
    fully_masked[1] = float("-inf")
    return cases + [
        Case("dim=0", (ctx.randn(4, 5),), {"dim": 0}),
        Case("dim=1 of 3-D", (ctx.randn(2, 3, 4),), {"dim": 1}),
        Case("temperature 0.5", (x,), {"temperature": 0.5}),
        Case("temperature 3", (x,), {"temperature": 3.0}),
        Case("large logits", (ctx.randn(2, 5, scale=1000.0),)),
        Case("-inf entries", (masked,)),
        # Values only: exp(x - logsumexp(x)) is right on a fully masked row, while its gradient there is NaN.
        Case("a fully masked row", (fully_masked,), gradients=False),
    ]


def _softmax_without_max(x: torch.Tensor, dim: int = -1, temperature: float = 1.0) -> torch.Tensor:
    exps = torch.exp(x / temperature)
    return exps / exps.sum(dim=dim, keepdim=True)


def _softmax_without_keepdim(max_keepdim: bool, sum_keepdim: bool):
    """The guarded softmax with the row maximum or the row sum taken without ``keepdim=True``."""
    def softmax(x: torch.Tensor, dim: int = -1, temperature: float = 1.0) -> torch.Tensor:
        z = x / temperature
        m = z.amax(dim=dim, keepdim=max_keepdim)
        e = torch.exp(z - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
        total = e.sum(dim=dim, keepdim=sum_keepdim)
        return e / torch.where(total > 0, total, torch.ones_like(total))
    return softmax


KEEPDIM_FORGOTTEN = ("the {step} over `dim` is taken without keepdim=True, so that dimension disappears and the result "
                     "no longer lines up with x: broadcasting pairs it with other axes, or fails. Pass keepdim=True.")


SOFTMAX = Exercise(
    name="softmax",
    lesson=LESSON,
    reference=ref.softmax,
    gradients=True,
    make_cases=softmax_cases,
    points=2,
    forbidden=SOFTMAX_APIS,
    mistakes=(
        Mistake("fully masked row gives NaN", lambda x, dim=-1, temperature=1.0: torch.softmax(x / temperature, dim),
                "a row whose every entry is -inf has max -inf, and (-inf) - (-inf) is NaN. Replace a "
                "non-finite max by 0, and divide by a sum of 0 as if it were 1."),
        Mistake("no max subtraction", _softmax_without_max,
                "exp() of large logits overflows to inf and inf/inf is NaN. Subtract each row's maximum first."),
        Mistake("always the last dimension", lambda x, dim=-1, temperature=1.0: ref.softmax(x, -1, temperature),
                "the result sums to 1 over the last dimension, not over `dim`. Pass `dim` to max and sum."),
        Mistake("temperature multiplies", lambda x, dim=-1, temperature=1.0: ref.softmax(x * temperature, dim),
                "the logits are multiplied by the temperature. Divide them: a high temperature flattens."),
        Mistake("temperature ignored", lambda x, dim=-1, temperature=1.0: ref.softmax(x, dim),
                "the temperature has no effect. Divide the logits by it before the exponential."),
        Mistake("keepdim forgotten in the sum", _softmax_without_keepdim(max_keepdim=True, sum_keepdim=False),
                KEEPDIM_FORGOTTEN.format(step="sum")),
        Mistake("keepdim forgotten in the max", _softmax_without_keepdim(max_keepdim=False, sum_keepdim=True),
                KEEPDIM_FORGOTTEN.format(step="maximum")),
    ),
    hints=(
        "softmax(x)_i is exp(x_i) / sum_j exp(x_j) along `dim`; take the sum with keepdim=True so it broadcasts.",
        "Subtracting a constant from every x_i leaves softmax unchanged; subtract the row maximum "
        "x.amax(dim=dim, keepdim=True) so that exp() never overflows.",
        "For a fully masked row the maximum is -inf: use torch.where(torch.isfinite(m), m, 0) for it, "
        "and torch.where(total > 0, total, 1) for the denominator.",
    ),
    difficulty=2,
    minutes=15,
)


# --- attention_scores --------------------------------------------------------------------------

def qk_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"q, k {shape}", (ctx.randn(*shape), ctx.randn(*shape))) for shape in _shapes(hidden)]
    return cases + [Case("more keys than queries", (ctx.randn(2, 3, 8), ctx.randn(2, 5, 8)))]


ATTENTION_SCORES = Exercise(
    name="attention_scores",
    lesson=LESSON,
    reference=ref.attention_scores,
    gradients=True,
    make_cases=qk_cases,
    points=1,
    forbidden=FUSED_ATTENTION,
    mistakes=(
        Mistake("no sqrt(d_k) scaling", lambda q, k: q @ k.transpose(-2, -1),
                "the scores are not divided by sqrt(d_k), so their variance grows with d_k."),
        Mistake("divided by d_k", lambda q, k: q @ k.transpose(-2, -1) / q.size(-1),
                "the scores are divided by d_k; divide by its square root."),
        Mistake("keys times queries", lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1)),
                "this is k @ q^T: rows should be queries and columns keys, q @ k.transpose(-2, -1)."),
    ),
    hints=(
        "Every query is compared with every key by a dot product: a matrix product of q with k transposed.",
        "Transpose only the last two dimensions: k.transpose(-2, -1), so batch and head dimensions stay.",
        "Divide by math.sqrt(q.size(-1)).",
    ),
    difficulty=1,
    minutes=5,
)


# --- scaled_dot_product_attention ----------------------------------------------------------------

def sdpa_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = []
    for shape in _shapes(hidden):
        q, k, v = ctx.randn(*shape), ctx.randn(*shape), ctx.randn(*shape)
        cases.append(Case(f"no mask {shape}", (q, k, v)))
    b, h, n, d = 2, 2, 5, 4
    q, k, v = ctx.randn(b, h, n, d), ctx.randn(b, h, n, d), ctx.randn(b, h, n, d)
    causal = torch.ones(n, n, dtype=torch.bool, device=ctx.device).tril()
    padding = ctx.rand_mask(b, 1, 1, n, keep=0.7)
    padding[..., 0] = True
    fully = causal.clone()
    fully[2] = False
    return cases + [
        Case("causal mask", (q, k, v), {"mask": causal}),
        Case("padding mask (b, 1, 1, k_len)", (q, k, v), {"mask": padding}),
        Case("a fully masked query row", (q, k, v), {"mask": fully}),
        Case("values wider than keys", (q, k, ctx.randn(b, h, n, 7)), {"mask": causal}),
        Case("more keys than queries, a mask per query (b, 1, q_len, k_len)",
             (ctx.randn(b, h, 3, d), ctx.randn(b, h, 6, d), ctx.randn(b, h, 6, d)), {"mask": _per_query(ctx, b, 3, 6)}),
    ]


def _per_query(ctx: CaseContext, batch: int, q_len: int, k_len: int) -> torch.Tensor:
    """A ``(batch, 1, q_len, k_len)`` keep-mask that differs from query to query; key 0 is always visible."""
    keep = ctx.rand_mask(batch, 1, q_len, k_len, keep=0.6)
    keep[..., 0] = True
    return keep


def _attention_variant(scale: bool = True, softmax_dim: int = -1, invert: bool = False, after: bool = False,
                       fill: float = float("-inf")):
    """A wrong attention: without scaling, softmax over queries, inverted mask, masking after softmax, or masked
    scores set to ``fill`` instead of -inf."""
    def attention(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / (math.sqrt(q.size(-1)) if scale else 1.0)
        if mask is not None and invert:
            mask = ~mask
        if mask is not None and not after:
            scores = scores.masked_fill(~mask, fill)
        weights = ref.softmax(scores, dim=softmax_dim)
        if mask is not None and after:
            weights = weights * mask
        return weights @ v, weights
    return attention


SCALED_DOT_PRODUCT_ATTENTION = Exercise(
    name="scaled_dot_product_attention",
    lesson=LESSON,
    reference=ref.scaled_dot_product_attention,
    gradients=True,
    make_cases=sdpa_cases,
    points=3,
    forbidden=FUSED_ATTENTION + SOFTMAX_APIS,
    mistakes=(
        Mistake("no sqrt(d_k) scaling", _attention_variant(scale=False),
                "the scores are not divided by sqrt(d_k) before the softmax."),
        Mistake("softmax over the queries", _attention_variant(softmax_dim=-2),
                "the softmax runs over the query axis; each query's weights must sum to 1 over the keys (dim=-1)."),
        Mistake("inverted mask", _attention_variant(invert=True),
                "the mask is used the wrong way round: True means 'may attend', so fill the scores where the "
                "mask is False."),
        Mistake("masking after the softmax", _attention_variant(after=True),
                "the weights are masked after the softmax, so they no longer sum to 1. Set masked scores to "
                "-inf before it."),
        Mistake("masked scores set to 0", _attention_variant(fill=0.0),
                "masked scores are set to 0, and exp(0) = 1 still gives those keys weight. Fill them with "
                "float('-inf'), whose exponential is exactly 0."),
        Mistake("masked with a large finite number", _attention_variant(fill=-1e9),
                "a fully masked row gets uniform weights: a finite fill such as -1e9 leaves a row of equal scores, "
                "which the softmax spreads evenly over keys the query must not see. Fill with float('-inf'): your "
                "softmax returns zeros for an all -inf row."),
    ),
    hints=(
        ("Three steps: the scores (your attention_scores), their softmax over the keys (the last dimension), and "
         "the weighted sum of the values, a matrix product of the weights with v."),
        "Mask before the softmax: where the mask is False, the score becomes -inf (`masked_fill`); the mask broadcasts.",
        "A fully masked row is all -inf; your softmax from the previous exercise already returns zeros for it.",
    ),
    difficulty=2,
    minutes=20,
)


# --- attention_entropy ---------------------------------------------------------------------------

def entropy_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"random weights {shape}", (ref.softmax(ctx.randn(*shape, scale=2.0)),)) for shape in _shapes(hidden)]
    one_hot = torch.eye(4, dtype=ctx.dtype, device=ctx.device)[None]
    uniform = torch.full((2, 3, 5), 0.2, dtype=ctx.dtype, device=ctx.device)
    zero_row = ref.softmax(ctx.randn(3, 4))
    zero_row[1] = 0.0
    return cases + [Case("one-hot rows", (one_hot,)), Case("uniform rows", (uniform,)),
                    Case("a fully masked (all-zero) row", (zero_row,))]


def _plogp(weights: torch.Tensor) -> torch.Tensor:
    return weights * torch.log(torch.where(weights > 0, weights, torch.ones_like(weights)))


ATTENTION_ENTROPY = Exercise(
    name="attention_entropy",
    lesson=LESSON,
    reference=ref.attention_entropy,
    make_cases=entropy_cases,
    points=1,
    forbidden=("torch.special.entr", "torch.distributions.Categorical"),
    mistakes=(
        Mistake("log base 2", lambda w: -_plogp(w).sum(-1) / math.log(2),
                "the entropy is in bits; use the natural logarithm (nats)."),
        Mistake("missing minus sign", lambda w: _plogp(w).sum(-1),
                "entropy is -sum w log w; without the minus sign it is negative."),
        Mistake("summed over the queries", lambda w: -_plogp(w).sum(-2),
                "the sum runs over the query axis; sum over the keys (the last dimension)."),
    ),
    hints=(
        "Entropy of one distribution: -sum_j w_j * log(w_j); do it for every row with .sum(dim=-1).",
        "log(0) is -inf and 0 * -inf is NaN. Take the log of torch.where(w > 0, w, 1) instead: its log is 0.",
        "Check yourself: uniform weights over n keys give log(n), a one-hot row gives 0.",
    ),
    difficulty=1,
    minutes=10,
)


# --- NumPy attention -----------------------------------------------------------------------------

def numpy_attention_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    return [Case(case.label, case.args, case.kwargs) for case in sdpa_cases(ctx, hidden)] + [
        Case("scores near 1000 (exp overflows unless the row maximum is subtracted)",
             (ctx.randn(2, 3, 8, scale=30.0), ctx.randn(2, 5, 8, scale=30.0), ctx.randn(2, 5, 4))),
        Case("2-D inputs: q (4, 8), k and v (6, 8)", (ctx.randn(4, 8), ctx.randn(6, 8), ctx.randn(6, 8))),
    ]


def _numpy_variant(scale: bool = True, axis: int = -1):
    def attention(q, k, v, mask=None):
        scores = q @ np.swapaxes(k, -1, -2) / (np.sqrt(q.shape[-1]) if scale else 1.0)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        weights = tnp.softmax(scores, axis=axis)
        return weights @ v, weights
    return attention


NUMPY_ATTENTION = Exercise(
    name="numpy_attention",
    lesson=LESSON,
    reference=tnp.scaled_dot_product_attention,
    make_cases=numpy_attention_cases,
    points=2,
    numpy=True,
    forbidden=("scipy.special.softmax",),
    mistakes=(
        Mistake("no sqrt(d_k) scaling", _numpy_variant(scale=False), "the scores are not divided by sqrt(d_k)."),
        Mistake("softmax over the queries", _numpy_variant(axis=-2),
                "the softmax runs over the query axis; each query's weights must sum to 1 over the keys (axis=-1)."),
    ),
    hints=(
        "np.swapaxes(k, -1, -2) transposes the last two axes; @ is a batched matrix product in NumPy too.",
        "Masked scores: np.where(mask, scores, -np.inf); subtract the row maximum before np.exp.",
        "Guard the fully masked row as in the PyTorch softmax: a non-finite maximum becomes 0, a zero sum 1.",
    ),
    difficulty=2,
    minutes=15,
)

EXERCISES = (SOFTMAX, ATTENTION_SCORES, SCALED_DOT_PRODUCT_ATTENTION, ATTENTION_ENTROPY, NUMPY_ATTENTION)
