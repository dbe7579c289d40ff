"""BM25 against a per-document loop over the formula, passages, search and the context's effect on the loss."""

import math

import pytest
import torch
from torch.testing import assert_close

from tfcourse.model import GPT, GPTConfig
from tfcourse.retrieval import (
    BM25Retriever,
    augmented_prompt,
    bm25_scores,
    continuation_loss,
    split_passages,
    words,
)
from tfcourse.tokenize import CharTokenizer


def _bm25_by_loops(tf, query, k1, b):
    n_docs, vocab = tf.shape
    lengths = [float(sum(row)) for row in tf.tolist()]
    average = sum(lengths) / n_docs
    scores = []
    for d in range(n_docs):
        total = 0.0
        for t in range(vocab):
            df = sum(1 for row in range(n_docs) if tf[row, t] > 0)
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            count = float(tf[d, t])
            total += float(query[t]) * idf * count * (k1 + 1) / (count + k1 * (1 - b + b * lengths[d] / average))
        scores.append(total)
    return torch.tensor(scores, dtype=tf.dtype)


@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (0.9, 0.4), (2.0, 0.0), (1.2, 1.0)])
def test_bm25_scores_match_the_formula(k1, b):
    generator = torch.Generator().manual_seed(0)
    tf = torch.randint(0, 4, (6, 9), generator=generator).double() * (torch.rand(6, 9, generator=generator) < 0.5)
    tf[:, 0] = 0  # a word no document has
    query = torch.randint(0, 3, (9,), generator=generator).double()
    assert_close(bm25_scores(tf, query, k1, b), _bm25_by_loops(tf, query, k1, b))


def test_split_passages_packs_whole_paragraphs():
    text = "a" * 50 + "\n\n" + "b" * 30 + "\n\n" + "c" * 100 + "\n\n\n" + "d" * 10
    assert split_passages(text, max_chars=90) == ["a" * 50 + "\n\n" + "b" * 30, "c" * 100, "d" * 10]
    assert "\n\n".join(split_passages(text, max_chars=1000)) == text.replace("\n\n\n", "\n\n")


def test_the_retriever_finds_the_passage_that_shares_the_rare_words():
    passages = ["The cat sat on the mat.", "Sockets send bytes over the network.", "The dog sat on the log."]
    retriever = BM25Retriever(passages)
    (best_score, best), (second_score, _) = retriever.search("how do sockets send bytes", k=2)
    assert best == passages[1] and best_score > second_score
    assert words("Send BYTES, now_2!") == ["send", "bytes", "now_2"]
    assert retriever.query_counts("unknown words only").sum() == 0


def test_augmented_prompt_puts_the_best_passage_next_to_the_prompt():
    assert augmented_prompt(["best", "second"], "Q") == "second\n\nbest\n\nQ"


def test_continuation_loss_is_the_cross_entropy_of_the_continuation_tokens():
    tokenizer = CharTokenizer("abcdefgh ")
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layers=1, n_heads=2, d_model=8)).eval()
    context, continuation = "abcdefgh abc", "def"
    ids = torch.tensor(tokenizer.encode(context + continuation))[-9:]
    with torch.no_grad():
        logits = model(ids[None, :-1])[0]
    expected = torch.nn.functional.cross_entropy(logits[-3:], ids[-3:]).item()
    assert continuation_loss(model, tokenizer, context, continuation) == pytest.approx(expected)
