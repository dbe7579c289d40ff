"""Lesson 08-modern (bonus), beyond the decoder: the sliding-window mask, linear (kernel) attention, the Vision
Transformer's patches and BM25 retrieval scores. Its exercises follow those of :mod:`autograder.exercises.modern`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.exercise import Case, CaseContext, Exercise, Mistake
from tfcourse import efficient_attention, retrieval, vit
from tfcourse.masks import causal_mask

LESSON = "08-modern"


# --- sliding_window_mask ------------------------------------------------------------------------

def window_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1), (9, 4), (6, 2)] if hidden else [(5, 2), (7, 3), (4, 1), (3, 5), (6, 6)]
    return [Case(f"seq_len {n}, window {w}", (n, w), {"device": ctx.device}) for n, w in sizes]


def _band(n: int, window: int, device=None, lower: int = 0, upper: int = 0) -> Tensor:
    """Keys ``j`` with ``i - window - lower < j <= i + upper``."""
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    return mask.tril(upper).triu(-(window - 1 + lower))


SLIDING_WINDOW_MASK = Exercise(
    name="sliding_window_mask",
    lesson=LESSON,
    reference=efficient_attention.sliding_window_mask,
    make_cases=window_cases,
    points=1,
    dtypes=(torch.float32,),
    mistakes=(
        Mistake("one key too many", lambda n, w, device=None: _band(n, w, device, lower=1),
                "each query sees window + 1 keys: key j is visible when i - window < j <= i, so the oldest visible "
                "key is i - window + 1."),
        Mistake("not causal", lambda n, w, device=None: _band(n, w, device, upper=w - 1),
                "the band reaches into the future: a query may not see keys after itself (j <= i), however wide "
                "the window."),
        Mistake("inverted", lambda n, w, device=None: ~efficient_attention.sliding_window_mask(n, w, device),
                "True must mean 'may attend': the window's keys are True, all others False."),
    ),
    hints=("Start from the causal mask: key j is visible to query i when j <= i.",
           ("Then also drop the keys that are too old: i - j must stay below `window`. torch.triu takes a "
            "negative diagonal."),
           "torch.ones(n, n, dtype=torch.bool, device=device).tril().triu(1 - window)."),
    difficulty=1,
    minutes=10,
)


# --- linear_attention ---------------------------------------------------------------------------

def linear_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1, 1, 2, 3), (3, 2, 9, 3, 2)] if hidden else [(2, 3, 6, 4, 5), (1, 2, 8, 8, 4), (2, 1, 5, 3, 3)]
    cases = []
    for b, h, n, d_k, d_v in sizes:
        q, k, v = ctx.randn(b, h, n, d_k), ctx.randn(b, h, n, d_k), ctx.randn(b, h, n, d_v)
        cases += [Case(f"({b}, {h}, {n}, {d_k}) queries, not causal", (q, k, v)),
                  Case(f"({b}, {h}, {n}, {d_k}) queries, causal", (q, k, v), {"causal": True})]
    memory = ctx.randn(2, 9, 4)
    return cases + [Case("3 queries on 9 keys, not causal (cross-attention)", (ctx.randn(2, 3, 4), memory,
                                                                             ctx.randn(2, 9, 5)),
                         rule="not causal, the queries and the keys may differ in number: every query sees "
                              "every key."),
                    Case("causal, eps 0.5", (ctx.randn(1, 5, 3), ctx.randn(1, 5, 3), ctx.randn(1, 5, 2)),
                         {"causal": True, "eps": 0.5},
                         rule="eps is added to the normaliser phi(q_i) . z_i, once, after the dot product.")]


def _kernel_attention(feature_map=efficient_attention.elu_feature_map, normalise: bool = True,
                      causal_keys: bool = True):
    """The quadratic kernel attention with another feature map, without the normaliser, or with every key seen
    even when causal."""
    def attention(q, k, v, causal=False, eps=1e-6):
        kernel = feature_map(q) @ feature_map(k).transpose(-2, -1)
        if causal and causal_keys:
            kernel = kernel * causal_mask(q.size(-2), q.device)
        if not normalise:
            return kernel @ v
        return (kernel @ v) / (kernel.sum(-1, keepdim=True) + eps)
    return attention


LINEAR_ATTENTION = Exercise(
    name="linear_attention",
    lesson=LESSON,
    reference=efficient_attention.linear_attention,
    gradients=True,
    make_cases=linear_cases,
    points=3,
    forbidden=("torch.nn.functional.scaled_dot_product_attention",),
    mistakes=(
        Mistake("elu without + 1", _kernel_attention(feature_map=F.elu),
                "phi(x) = elu(x) + 1: without the + 1 the features can be negative and the normaliser can reach 0."),
        Mistake("relu feature map", _kernel_attention(feature_map=F.relu),
                "the feature map is elu(x) + 1, positive everywhere; relu(x) zeroes whole rows."),
        Mistake("no normaliser", _kernel_attention(normalise=False),
                "the output is divided by phi(q_i) . z_i, the sum of the query's kernel scores (its softmax "
                "denominator), plus eps."),
        Mistake("causal ignored", _kernel_attention(causal_keys=False),
                "with causal=True query i may only use keys j <= i: cumulative sums over the sequence, not the "
                "total."),
        Mistake("exp kernel", _kernel_attention(feature_map=torch.exp),
                "phi is elu(x) + 1, not exp: a kernel exp(q) . exp(k) is a different attention."),
    ),
    hints=(("Apply the feature map elu(x) + 1 to the queries and the keys first. Not causal, every query shares one "
            "(d_k, d_v) matrix, phi(K)^T V, and one normalising vector, the sum of the phi(k_j)."),
           ("Causal: S_i and z_i sum only the keys j <= i. Build the outer products phi(k_j) v_j^T with "
            "k.unsqueeze(-1) * v.unsqueeze(-2) and take torch.cumsum along the sequence axis."),
           ("numerator = (q.unsqueeze(-2) @ S).squeeze(-2), normaliser = (q * torch.cumsum(k, -2)).sum(-1, "
            "keepdim=True); return numerator / (normaliser + eps).")),
    difficulty=3,
    minutes=25,
)


# --- patchify -----------------------------------------------------------------------------------

def patch_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1, 2, 2, 1), (2, 3, 9, 6, 3)] if hidden else [(2, 1, 8, 8, 4), (1, 3, 6, 6, 3), (2, 2, 4, 8, 2)]
    return [Case(f"images ({b}, {c}, {h}, {w}), patch {p}", (ctx.randn(b, c, h, w), p)) for b, c, h, w, p in sizes]


def _patchify_variant(order: tuple[int, ...], transpose_grid: bool = False):
    """Patches flattened with the axes ``(B, rows, cols, C, p_row, p_col)`` permuted to ``order``'s last three,
    or read column by column."""
    def patchify(images, patch_size):
        b, c, h, w = images.shape
        blocks = images.reshape(b, c, h // patch_size, patch_size, w // patch_size, patch_size)
        grid = (0, 4, 2) if transpose_grid else (0, 2, 4)
        return blocks.permute(*grid, *order).reshape(b, -1, c * patch_size**2)
    return patchify


PATCHIFY = Exercise(
    name="patchify",
    lesson=LESSON,
    reference=vit.patchify,
    gradients=True,
    make_cases=patch_cases,
    points=2,
    forbidden=("torch.nn.functional.unfold", "torch.nn.Unfold", "torch.Tensor.unfold"),
    mistakes=(
        Mistake("channels last inside a patch", _patchify_variant((3, 5, 1)),
                "each patch is flattened channel first, then row, then column (C, p, p), as a Conv2d weight is laid "
                "out; yours puts the channel last."),
        Mistake("patches in column order", _patchify_variant((1, 3, 5), transpose_grid=True),
                "patches go in reading order: left to right along the first row of patches, then the next row."),
        Mistake("reshape without permute", lambda images, p: images.reshape(images.size(0), -1,
                                                                            images.size(1) * p * p),
                "a reshape alone cuts the image into runs of consecutive pixels, not p x p squares: reshape to "
                "(B, C, H/p, p, W/p, p) and permute the patch-grid axes in front."),
    ),
    hints=("Split each spatial axis into (number of patches, p): images.reshape(B, C, H // p, p, W // p, p).",
           ("Move the two patch-grid axes right after the batch and the channel in front of the in-patch axes: "
            "permute(0, 2, 4, 1, 3, 5)."),
           "Then .reshape(B, (H // p) * (W // p), C * p * p)."),
    difficulty=2,
    minutes=15,
)


# --- bm25_scores --------------------------------------------------------------------------------

def bm25_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 3), (7, 12)] if hidden else [(5, 8), (4, 6), (8, 10)]
    cases = []
    for n_docs, vocab in sizes:
        tf = ctx.randint(0, 4, n_docs, vocab).to(ctx.dtype) * ctx.rand_mask(n_docs, vocab, keep=0.5)
        tf[0] += 1  # no empty document
        query = ctx.randint(0, 3, vocab).to(ctx.dtype)
        cases.append(Case(f"{n_docs} documents, {vocab} words", (tf, query)))
    tf = ctx.randint(1, 5, 6, 5).to(ctx.dtype)
    tf[:, 0] = 0  # a word no document has, in the query
    query = torch.tensor([2.0, 1.0, 0.0, 0.0, 1.0], dtype=ctx.dtype, device=ctx.device)
    return cases + [Case("k1 0.9, b 0.4", (tf, query), {"k1": 0.9, "b": 0.4},
                         rule="use the k1 and b arguments."),
                    Case("b 0: no length normalisation", (tf, query), {"b": 0.0})]


def _bm25_variant(idf=None, saturate: bool = True, length_norm: bool = True, query_counts: bool = True):
    """BM25 with another idf, raw term counts instead of saturated ones, no length normalisation, or the query's
    words counted once."""
    def scores(tf, query, k1=1.5, b=0.75):
        n_docs, doc_freq = tf.size(0), (tf > 0).sum(0).to(tf.dtype)
        weights = idf(n_docs, doc_freq) if idf else torch.log(1 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
        lengths = tf.sum(1, keepdim=True)
        relative = lengths / lengths.mean() if length_norm else torch.ones_like(lengths)
        saturated = tf * (k1 + 1) / (tf + k1 * (1 - b + b * relative)) if saturate else tf
        return saturated @ ((query if query_counts else (query > 0).to(tf.dtype)) * weights)
    return scores


BM25_SCORES = Exercise(
    name="bm25_scores",
    lesson=LESSON,
    reference=retrieval.bm25_scores,
    make_cases=bm25_cases,
    points=2,
    mistakes=(
        Mistake("idf without the 1 +", _bm25_variant(idf=lambda n, df: torch.log((n - df + 0.5) / (df + 0.5))),
                "idf_t = log(1 + (N - df_t + 0.5) / (df_t + 0.5)): without the 1 + a word in more than half the "
                "documents gets a negative weight."),
        Mistake("plain log(N / df)", _bm25_variant(idf=lambda n, df: torch.log(n / df)),
                "that is TF-IDF's idf; BM25's is log(1 + (N - df_t + 0.5) / (df_t + 0.5)), finite for a word no "
                "document has."),
        Mistake("counts not saturated", _bm25_variant(saturate=False),
                "the raw count tf_dt is used; BM25 saturates it: tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))."),
        Mistake("no length normalisation", _bm25_variant(length_norm=False),
                "|d| / avgdl is missing: a document's length is its row sum of tf, avgdl the mean of those."),
        Mistake("query words counted once", _bm25_variant(query_counts=False),
                "a word the query holds twice counts twice: multiply by the query's counts, not by whether the "
                "word occurs."),
    ),
    hints=(("Three pieces, each a tensor expression over whole axes: the document frequency counts the rows where "
            "`tf > 0`, the idf follows from it and N, and a document's length is its row sum."),
           ("The saturated count is tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)), elementwise, with |d| as a "
            "column (keepdim=True) so it broadcasts over the words."),
           "The score is a matrix-vector product: saturated @ (query * idf)."),
    difficulty=2,
    minutes=15,
)

EXERCISES = (SLIDING_WINDOW_MASK, LINEAR_ATTENTION, PATCHIFY, BM25_SCORES)
