"""Callable case inputs that are plain data: small picklable stand-ins for models.

Some exercises take a callable, such as the step function of a beam search that maps
token ids to next-token logits. Their cases pass an instance of a class from this module:
it holds only tensors and numbers, pickles, and imports nothing but torch, so it can be
sent to a separate grading process that never loads the course's reference code.
"""

from __future__ import annotations

from torch import Tensor


class BigramLogits:
    """A bigram language model given by a table: the next token's logits depend on the last token only.

    ``table[a, b]`` is the logit of token ``b`` following token ``a``, ``(vocab, vocab)``.
    Called with token ids ``(n, t)`` it returns the next-token logits ``(n, vocab)``,
    ``table[ids[:, -1]]``, on the table's device and dtype.
    """

    def __init__(self, table: Tensor):
        if table.dim() != 2 or table.size(0) != table.size(1):
            raise ValueError(f"a bigram table is square, (vocab, vocab); got shape {tuple(table.shape)}")
        self.table = table

    @property
    def vocab_size(self) -> int:
        return self.table.size(0)

    def __call__(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (n, t), got shape {tuple(ids.shape)}")
        return self.table[ids[:, -1]]

    def __repr__(self) -> str:
        return f"BigramLogits(vocab_size={self.vocab_size}, dtype={self.table.dtype}, device={self.table.device})"


class PositionalBigramLogits:
    """A bigram language model whose table changes along the sequence: the next token's logits depend on the
    last token and on the prefix's length.

    ``table[t - 1, a, b]`` is the logit of token ``b`` following a prefix of length ``t`` that ends in token
    ``a``; ``table`` is ``(positions, vocab, vocab)`` and longer prefixes use its last slice. Called with token
    ids ``(n, t)`` it returns the next-token logits ``(n, vocab)``. Unlike a plain bigram model, two different
    sequences never get exactly the same score (there, the same transitions in another order tie), so which
    one is best does not depend on how a search rounds its sums.
    """

    def __init__(self, table: Tensor):
        if table.dim() != 3 or table.size(1) != table.size(2):
            raise ValueError(f"a positional bigram table is (positions, vocab, vocab); got shape {tuple(table.shape)}")
        self.table = table

    @property
    def vocab_size(self) -> int:
        return self.table.size(-1)

    def __call__(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (n, t), got shape {tuple(ids.shape)}")
        return self.table[min(ids.size(1), self.table.size(0)) - 1][ids[:, -1]]

    def __repr__(self) -> str:
        return (f"PositionalBigramLogits(positions={self.table.size(0)}, vocab_size={self.vocab_size}, "
                f"dtype={self.table.dtype}, device={self.table.device})")
