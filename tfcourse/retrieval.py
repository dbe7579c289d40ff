"""Retrieval-augmented generation (Lewis et al., 2020) over the course's offline corpus.

A retriever finds the passages of a collection that best match a query, and the generator
reads them in its prompt: what the model needs to know is looked up, not memorised. The
retriever here is BM25 (Robertson and Zaragoza, 2009), written out over word counts: passage
``d`` scores, for a query with ``q_t`` occurrences of each term ``t``,

    score(d) = sum_t q_t idf_t tf_dt (k1 + 1) / (tf_dt + k1 (1 - b + b |d| / avgdl))
    idf_t    = log(1 + (N - df_t + 0.5) / (df_t + 0.5))

with ``tf_dt`` the count of ``t`` in ``d``, ``|d|`` its number of words, ``avgdl`` the mean of
``|d|``, ``N`` the number of passages and ``df_t`` how many contain ``t``. ``k1`` caps what
repeating a word can earn (saturation); ``b`` discounts long passages. The generator is the
course's character-level :class:`~tfcourse.model.GPT`.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor

from tfcourse.model import GPT
from tfcourse.tokenize import CharTokenizer

WORD = re.compile(r"[a-z0-9_]+")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters, digits and underscores)."""
    return WORD.findall(text.lower())


def split_passages(text: str, max_chars: int = 400) -> list[str]:
    """Consecutive paragraphs (separated by blank lines) packed into passages of at most ``max_chars``.

    A paragraph longer than ``max_chars`` is a passage of its own; no paragraph is cut.
    """
    passages: list[str] = []
    for paragraph in filter(None, (p.strip() for p in text.split("\n\n"))):
        if passages and len(passages[-1]) + 2 + len(paragraph) <= max_chars:
            passages[-1] += "\n\n" + paragraph
        else:
            passages.append(paragraph)
    return passages


def bm25_weights(tf: Tensor, k1: float = 1.5, b: float = 0.75) -> Tensor:
    """What each occurrence of each word in a query adds to each document's BM25 score.

    ``tf``: ``(n_docs, vocab)`` term counts of each document -> ``(n_docs, vocab)``, the idf times the
    saturated count. Document lengths ``|d|`` are ``tf``'s row sums, ``df_t`` the number of rows where
    ``tf[:, t] > 0``.
    """
    n_docs = tf.size(0)
    doc_freq = (tf > 0).sum(0).to(tf.dtype)
    idf = torch.log(1 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
    lengths = tf.sum(1, keepdim=True)
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / lengths.mean()))


def bm25_scores(tf: Tensor, query: Tensor, k1: float = 1.5, b: float = 0.75) -> Tensor:
    """BM25 score of every document for one query: ``tf`` ``(n_docs, vocab)`` term counts of the documents,
    ``query`` ``(vocab,)`` term counts of the query -> ``(n_docs,)``."""
    return bm25_weights(tf, k1, b) @ query


class BM25Retriever:
    """BM25 over a list of passages: ``tf`` is their ``(n_passages, vocab)`` word-count matrix (float32), ``weights``
    its :func:`bm25_weights`, computed once, so that a search is one matrix-vector product."""

    def __init__(self, passages: list[str], k1: float = 1.5, b: float = 0.75):
        self.passages = passages
        counts = [Counter(words(passage)) for passage in passages]
        self.vocab = {word: i for i, word in enumerate(sorted(set().union(*counts)))}
        self.tf = torch.zeros(len(passages), len(self.vocab))
        for row, passage_counts in enumerate(counts):
            columns = torch.tensor([self.vocab[word] for word in passage_counts])
            self.tf[row, columns] = torch.tensor(list(passage_counts.values()), dtype=torch.float32)
        self.weights = bm25_weights(self.tf, k1, b)

    def query_counts(self, query: str) -> Tensor:
        """``(vocab,)`` counts of the query's words (words outside the vocabulary are dropped)."""
        counts = torch.zeros(len(self.vocab))
        for word, count in Counter(words(query)).items():
            if word in self.vocab:
                counts[self.vocab[word]] = count
        return counts

    def search(self, query: str, k: int = 3) -> list[tuple[float, str]]:
        """The ``k`` best passages for ``query``, best first, with their scores."""
        scores = self.weights @ self.query_counts(query)
        best = scores.topk(min(k, len(self.passages)))
        return [(score, self.passages[i]) for score, i in zip(best.values.tolist(), best.indices.tolist())]


def augmented_prompt(passages: list[str], prompt: str) -> str:
    """The retrieved ``passages`` (best last, nearest the prompt) followed by ``prompt``, blank lines between."""
    return "\n\n".join([*reversed(passages), prompt])


@torch.no_grad()
def continuation_loss(model: GPT, tokenizer: CharTokenizer, context: str, continuation: str) -> float:
    """Mean cross-entropy (nats per character) of ``continuation`` after ``context``.

    Only the last ``block_size`` characters the model can see are given; ``continuation`` must be
    shorter than ``block_size``.
    """
    context_ids, target_ids = tokenizer.encode(context), tokenizer.encode(continuation)
    ids = (context_ids + target_ids)[-(model.config.block_size + 1):]
    device = next(model.parameters()).device
    ids = torch.tensor(ids, device=device)
    logits = model(ids[None, :-1])[0, -len(target_ids):]
    return F.cross_entropy(logits, ids[-len(target_ids):]).item()


def overlap(generated: str, passage: str) -> float:
    """Fraction of the distinct words of ``generated`` (longer than 3 letters) that occur in ``passage``."""
    generated_words = {word for word in words(generated) if len(word) > 3}
    return len(generated_words & set(words(passage))) / max(len(generated_words), 1) if generated_words else math.nan
