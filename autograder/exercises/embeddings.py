"""Lesson 01-embeddings: BPE pair counting and merging, token embeddings, positional encodings, rotary."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np
import torch

import tfcourse.np as tnp
from autograder.exercise import Case, CaseContext, Exercise, Mistake
from tfcourse import embeddings as ref
from tfcourse import tokenize

LESSON = "01-embeddings"


def _ids(ctx: CaseContext, length: int, vocab_size: int) -> list[int]:
    """``length`` random token ids below ``vocab_size``, as a plain list."""
    return ctx.randint(0, vocab_size, length).tolist()


# --- count_pairs --------------------------------------------------------------------------------

def count_pairs_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(40, 3), (7, 20)] if hidden else [(12, 4), (30, 6), (5, 50)]
    cases = [Case(f"{n} random ids below {v}", (_ids(ctx, n, v),)) for n, v in sizes]
    return cases + [
        Case("a repeated id [7, 7, 7, 7]", ([7, 7, 7, 7],)),
        Case("the bytes of 'aaabdaaabac'", (list(b"aaabdaaabac"),)),
        Case("a single id", ([5],)),
        Case("no ids", ([],)),
    ]


def _count(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """How often each pair occurs."""
    counts: dict[tuple[int, int], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    return counts


COUNT_PAIRS = Exercise(
    name="count_pairs",
    lesson=LESSON,
    reference=tokenize.count_pairs,
    make_cases=count_pairs_cases,
    points=1,
    dtypes=(torch.float32,),
    mistakes=(
        Mistake("pairs counted without overlap", lambda ids: _count(zip(ids[::2], ids[1::2])),
                "only every other pair is counted. Slide a window of two ids one step at a time: "
                "zip(ids, ids[1:]) gives every adjacent pair."),
        Mistake("the last pair is missed", lambda ids: _count(itertools.pairwise(ids[:-1])),
                "the loop stops one pair early. A list of n ids has n - 1 adjacent pairs: range(len(ids) - 1)."),
        Mistake("each pair counted once", lambda ids: dict.fromkeys(itertools.pairwise(ids), 1),
                "every pair gets count 1: add 1 to the pair's count each time it occurs, "
                "counts[pair] = counts.get(pair, 0) + 1."),
        Mistake("pairs written (right, left)", lambda ids: _count(zip(ids[1:], ids)),
                "the keys are (next id, id). Write each pair in reading order, (ids[i], ids[i + 1])."),
    ),
    hints=(
        "Look at every position i from 0 to len(ids) - 2 and the pair (ids[i], ids[i + 1]) it starts: pairs overlap.",
        "zip(ids, ids[1:]) yields exactly those pairs; the pairs of [1, 1, 1] are (1, 1) twice.",
        "Count with a dict, counts[pair] = counts.get(pair, 0) + 1, or with collections.Counter.",
    ),
    difficulty=1,
    minutes=5,
)


# --- merge_pair ---------------------------------------------------------------------------------

def merge_pair_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(30, 3), (9, 2)] if hidden else [(20, 3), (15, 4), (40, 2)]
    cases = []
    for n, v in sizes:
        ids = _ids(ctx, n, v)
        pair = (ids[3], ids[4])
        cases.append(Case(f"{n} random ids below {v}, pair {pair}", (ids, pair, 256)))
    return cases + [
        Case("[1, 1, 1] with pair (1, 1)", ([1, 1, 1], (1, 1), 9)),
        Case("the pair at both ends", ([5, 6, 1, 5, 6], (5, 6), 7)),
        Case("a pair that does not occur", ([1, 2, 3, 1], (3, 2), 9)),
        Case("a single id", ([4], (4, 4), 9)),
        Case("no ids", ([], (1, 2), 9)),
    ]


def _wrong_merge(step: int = 2, drop_last: bool = False, first_only: bool = False):
    """A left-to-right merge with one bug: a step of one after a match, the last id dropped, or one merge."""
    def merge_pair(ids, pair, new_id):
        merged, i, merging = [], 0, True
        end = len(ids) - 1 if drop_last else len(ids)
        while i < end:
            if merging and i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
                merged.append(new_id)
                i += step
                merging = not first_only
            else:
                merged.append(ids[i])
                i += 1
        return merged
    return merge_pair


MERGE_PAIR = Exercise(
    name="merge_pair",
    lesson=LESSON,
    reference=tokenize.merge_pair,
    make_cases=merge_pair_cases,
    points=2,
    dtypes=(torch.float32,),
    mistakes=(
        Mistake("the pair's second id is kept", _wrong_merge(step=1),
                "after a match the loop moves on by one id, so the pair's second id is copied too. "
                "Skip both ids of the pair: i += 2."),
        Mistake("the last id is dropped", _wrong_merge(drop_last=True),
                "the loop stops before the last id, so an unmerged last id is lost. Loop over every "
                "position and test `i + 1 < len(ids)` before looking at the pair."),
        Mistake("only the first occurrence merged", _wrong_merge(first_only=True),
                "only the first occurrence is replaced. Keep scanning to the end of the list."),
        Mistake("nothing merged", lambda ids, pair, new_id: list(ids),
                "nothing is merged: the ids come back unchanged, so no comparison with `pair` ever succeeded. "
                "`pair` is a tuple, and a list [a, b] never equals a tuple: compare (ids[i], ids[i + 1]) == pair."),
    ),
    hints=(
        "Build a new list while an index i walks along ids with a while loop.",
        ("If i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair: append new_id and jump i += 2; "
         "otherwise append ids[i] and step i += 1."),
        "Compare as tuples: `pair` is a tuple, so (ids[i], ids[i + 1]) == pair. [1, 1, 1] with (1, 1) gives [9, 1].",
    ),
    difficulty=2,
    minutes=10,
)


# --- token embeddings ---------------------------------------------------------------------------

def token_embedding_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(5, 2, 1, 3), (50, 12, 3, 9)] if hidden else [(10, 8, 2, 5), (100, 16, 1, 7), (7, 4, 3, 3)]
    cases = [Case(f"vocab {v}, d_model {d}, ids ({b}, {n})", (ctx.randint(0, v, b, n),), init=(v, d))
             for v, d, b, n in sizes]
    ends = torch.tensor([0, 9, 0, 9], device=ctx.device)
    return cases + [Case("1-D ids, the first and the last id", (ends,), init=(10, 6))]


def numpy_token_embedding_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    return [Case(case.label, (case.args[0], ctx.randn(*case.init))) for case in token_embedding_cases(ctx, hidden)]


def _embedding_lookup(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """:class:`TokenEmbedding` holding ``table`` as its weights, on NumPy arrays."""
    module = ref.TokenEmbedding(*table.shape).to(torch.float64)
    with torch.no_grad():
        module.embedding.weight.copy_(torch.from_numpy(table))
        return module(torch.from_numpy(ids)).numpy().astype(table.dtype)


NUMPY_TOKEN_EMBEDDING = Exercise(
    name="numpy_token_embedding",
    lesson=LESSON,
    reference=_embedding_lookup,
    make_cases=numpy_token_embedding_cases,
    points=1,
    numpy=True,
    mistakes=(
        Mistake("no sqrt(d_model) scale", lambda ids, table: table[ids],
                "the rows are not scaled. Multiply them by sqrt(d_model), the table's number of columns."),
        Mistake("scaled by sqrt(vocab_size)", lambda ids, table: table[ids] * np.sqrt(table.shape[0]),
                "the scale uses the number of rows (vocab_size). d_model is the number of columns, table.shape[1]."),
    ),
    hints=(
        "Row i of the table is the vector of token i: one_hot(i) @ table picks exactly that row.",
        ("NumPy indexing with an integer array picks a row for every id at once: table[ids] has shape "
         "ids.shape + (d_model,)."),
        ("Multiply by math.sqrt(table.shape[1]): a Python float keeps the table's dtype, while np.sqrt returns a "
         "float64 scalar that turns float32 rows into float64."),
    ),
    difficulty=1,
    minutes=5,
)

TOKEN_EMBEDDING = Exercise(
    name="TokenEmbedding",
    lesson=LESSON,
    reference=ref.TokenEmbedding,
    kind="module",
    make_cases=token_embedding_cases,
    points=1,
    mistakes=(
        Mistake("no sqrt(d_model) scale", lambda module, ids: module.embedding(ids),
                "the looked-up vectors are not scaled. Multiply them by math.sqrt(d_model)."),
        Mistake("divided by sqrt(d_model)", lambda module, ids: module.embedding(ids) / math.sqrt(module.d_model),
                "the vectors are divided by sqrt(d_model); multiply instead."),
        Mistake("scaled by d_model", lambda module, ids: module.embedding(ids) * module.d_model,
                "the vectors are multiplied by d_model; the scale is its square root."),
        Mistake("scaled by sqrt(vocab_size)",
                lambda module, ids: module.embedding(ids) * math.sqrt(module.embedding.num_embeddings),
                "the scale uses vocab_size, the number of rows of the table. Multiply by math.sqrt(d_model), the "
                "width of one vector."),
    ),
    hints=(
        "In __init__, after super().__init__(), create an nn.Embedding with vocab_size rows of width d_model; keep d_model.",
        "In forward, calling the embedding on ids looks up one row per id, for ids of any shape.",
        "Multiply the result by math.sqrt(self.d_model).",
    ),
    difficulty=1,
    minutes=5,
)


# --- sinusoidal positional encoding ------------------------------------------------------------

def _encoding_sizes(hidden: bool) -> list[tuple[int, int]]:
    return [(1, 2), (37, 10)] if hidden else [(8, 4), (20, 16), (50, 6)]


def encoding_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    return [Case(f"seq_len {n}, d_model {d}", (n, d), {"dtype": ctx.dtype, "device": ctx.device})
            for n, d in _encoding_sizes(hidden)]


def numpy_encoding_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"seq_len {n}, d_model {d}", (n, d)) for n, d in _encoding_sizes(hidden)]
    return cases + [Case("seq_len 10, d_model 8, dtype float32", (10, 8), {"dtype": np.float32})]


def _wrong_encoding(swapped: bool = False, halves: bool = False, exponent: float = 2.0, first_position: int = 0,
                    column_index: bool = False):
    """A wrong table: sin and cos swapped, in two halves, a wrong frequency exponent, positions from 1, or each
    column's own index in the exponent (``column_index``: column c at pos / 10000^(2c/d))."""
    def encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
        position = torch.arange(first_position, first_position + seq_len, dtype=torch.float64)[:, None]
        pair = torch.arange(d_model // 2, dtype=torch.float64)
        even = exponent * pair
        sine_exponent, cosine_exponent = (2 * even, 2 * even + 2) if column_index else (even, even)
        sines = (position / 10000.0 ** (sine_exponent / d_model)).sin()
        cosines = (position / 10000.0 ** (cosine_exponent / d_model)).cos()
        first, second = (cosines, sines) if swapped else (sines, cosines)
        table = torch.cat([first, second], -1) if halves else torch.stack([first, second], -1).flatten(-2)
        return table.to(device=device, dtype=dtype)
    return encoding


def _as_numpy_table(torch_encoding):
    """A NumPy version of a torch table builder, ``(seq_len, d_model, dtype=np.float64) -> ndarray``."""
    def encoding(seq_len, d_model, *, dtype=np.float64):
        return torch_encoding(seq_len, d_model, dtype=torch.float64).numpy().astype(dtype)
    return encoding


ENCODING_MISTAKES = (
    Mistake("sin and cos swapped", _wrong_encoding(swapped=True),
            "the even columns hold cosines. Even columns (0, 2, 4, ...) are sin, odd columns cos."),
    Mistake("sines and cosines in two halves", _wrong_encoding(halves=True),
            "all sines come first and all cosines after them. Interleave them: table[:, 0::2] = sin, "
            "table[:, 1::2] = cos."),
    Mistake("exponent i/d_model instead of 2i/d_model", _wrong_encoding(exponent=1.0),
            "the frequencies fall too slowly. Column pair i uses 10000^(2i / d_model): the exponent holds the "
            "even column index 2i."),
    Mistake("positions start at 1", _wrong_encoding(first_position=1),
            "the first row is position 1. Positions are 0, 1, ..., seq_len - 1: row 0 is [0, 1, 0, 1, ...]."),
    Mistake("each column's own index in the exponent", _wrong_encoding(column_index=True),
            "the two columns of a pair turn at different rates: the exponent uses each column's own index. Columns "
            "2i and 2i + 1 share one frequency, 1 / 10000^(2i / d_model), with i counting pairs."),
)

NUMPY_SINUSOIDAL_POSITIONAL_ENCODING = Exercise(
    name="numpy_sinusoidal_positional_encoding",
    lesson=LESSON,
    reference=tnp.sinusoidal_positional_encoding,
    make_cases=numpy_encoding_cases,
    points=2,
    numpy=True,
    dtypes=(torch.float64,),
    mistakes=tuple(Mistake(m.name, _as_numpy_table(m.variant), m.explanation) for m in ENCODING_MISTAKES),
    hints=(
        ("A column of positions, `np.arange(seq_len)[:, None]`, and a row of the even column indices 2i "
         "broadcast into the (seq_len, d_model / 2) table of angles."),
        ("Each angle is its position divided by 10000 ** (2i / d_model); the even columns of the table (slice "
         "0::2) hold their sines, the odd columns (slice 1::2) their cosines."),
        "Start from table = np.empty((seq_len, d_model)) and return table.astype(dtype).",
    ),
    difficulty=2,
    minutes=15,
)

SINUSOIDAL_POSITIONAL_ENCODING = Exercise(
    name="sinusoidal_positional_encoding",
    lesson=LESSON,
    reference=ref.sinusoidal_positional_encoding,
    make_cases=encoding_cases,
    points=2,
    mistakes=ENCODING_MISTAKES,
    hints=(
        ("torch.arange(seq_len, dtype=dtype, device=device)[:, None] (a column) times a row of d_model / 2 "
         "frequencies gives the table of angles."),
        ("The frequencies are 10000 ** (-torch.arange(0, d_model, 2) / d_model), created with the same dtype "
         "and device."),
        ("Make table = torch.empty(seq_len, d_model, dtype=dtype, device=device), then table[:, 0::2] = sin(angles) "
         "and table[:, 1::2] = cos(angles)."),
    ),
    difficulty=2,
    minutes=15,
)


# --- rotary position embedding -----------------------------------------------------------------

def rotary_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    shapes = [(1, 1, 1, 2), (2, 3, 7, 10)] if hidden else [(2, 2, 5, 8), (1, 4, 6, 4), (3, 9, 6)]
    cases = [Case(f"x {shape}", (ctx.randn(*shape),)) for shape in shapes]
    n = 6
    offset = torch.arange(10, 10 + n, device=ctx.device)
    shuffled = torch.randperm(n, generator=ctx.generator).to(ctx.device)
    return cases + [
        Case("positions 10..15 (new tokens after 10 cached ones)", (ctx.randn(2, n, 8), offset)),
        Case("positions in shuffled order", (ctx.randn(n, 4), shuffled)),
        Case("base 500", (ctx.randn(1, 2, n, 12),), {"base": 500.0}),
    ]


def _positions(x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    return torch.arange(x.size(-2), device=x.device) if positions is None else positions


def _rotary_adjacent_pairs(x, positions=None, base=10000.0):
    """Rotate the pairs (x[2i], x[2i+1]) instead of (x[i], x[i + d/2])."""
    halves = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)
    rotated = ref.apply_rotary(halves, positions, base)
    first, second = rotated.chunk(2, dim=-1)
    return torch.stack([first, second], dim=-1).flatten(-2)


ROTARY_MISTAKES = (
    Mistake("adjacent pairs rotated", _rotary_adjacent_pairs,
            "the pairs (x[2i], x[2i + 1]) are rotated. This exercise uses the rotate-half convention: "
            "pair i is (x[..., i], x[..., i + d/2])."),
    Mistake("rotated the wrong way",
            lambda x, positions=None, base=10000.0: ref.apply_rotary(x, -_positions(x, positions), base),
            "the rotation goes clockwise. x'_i = x_i cos - x_{i+d/2} sin and x'_{i+d/2} = x_i sin + x_{i+d/2} cos."),
    # base^(-i/d) equals (sqrt(base))^(-2i/d): a missing factor 2 in the exponent is a square-rooted base.
    Mistake("exponent i/d instead of 2i/d",
            lambda x, positions=None, base=10000.0: ref.apply_rotary(x, positions, math.sqrt(base)),
            "the frequencies fall too slowly. Pair i turns at base^(-2i/d), with i = 0 .. d/2 - 1."),
    Mistake("positions ignored", lambda x, positions=None, base=10000.0: ref.apply_rotary(x, None, base),
            "the angles always use positions 0, 1, 2, ...: use the `positions` argument when it is given."),
)

APPLY_ROTARY = Exercise(
    name="apply_rotary",
    lesson=LESSON,
    reference=ref.apply_rotary,
    gradients=True,
    make_cases=rotary_cases,
    points=3,
    mistakes=ROTARY_MISTAKES,
    hints=(
        ("Build a (seq, d/2) table of angles, each position times each frequency base ** (-2i / d) for "
         "i < d/2: it broadcasts against a half of x, (..., seq, d/2)."),
        ("Split x along its last dimension into a first and a second half and turn each pair (first, second) by "
         "its angle: first * cos - second * sin, and first * sin + second * cos."),
        ("Concatenate the two halves with torch.cat(..., dim=-1). Create inv_freq and default positions on x.device, "
         "with x.dtype for the angles."),
    ),
    difficulty=3,
    minutes=25,
)

EXERCISES = (COUNT_PAIRS, MERGE_PAIR, NUMPY_TOKEN_EMBEDDING, TOKEN_EMBEDDING, NUMPY_SINUSOIDAL_POSITIONAL_ENCODING,
             SINUSOIDAL_POSITIONAL_ENCODING, APPLY_ROTARY)
