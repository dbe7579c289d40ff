import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tfcourse.data
from tfcourse.data import (
    BOS_ID,
    EOS_ID,
    FIRST_SYMBOL_ID,
    PAD_ID,
    copy_batch,
    load_corpus,
    lm_batches,
    reverse_batch,
    task_vocab_size,
)
from tfcourse.gpt_tasks import AdditionTask, addition_problems
from tfcourse.reasoning import extract_answer


def addition_examples(n: int, n_digits: int, chain_of_thought: bool, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (prompt, target) examples as ``AdditionTask`` makes them, from ``n_digits``-digit problems."""
    return AdditionTask(chain_of_thought).examples(addition_problems(n, n_digits, random.Random(seed)))


def test_special_ids_are_distinct_and_precede_symbols():
    assert sorted({PAD_ID, BOS_ID, EOS_ID}) == list(range(FIRST_SYMBOL_ID))
    assert task_vocab_size(10) == FIRST_SYMBOL_ID + 10


@pytest.mark.parametrize("make_batch", [reverse_batch, copy_batch])
def test_seq2seq_batch_shapes_and_special_tokens(make_batch, device):
    src, tgt = make_batch(4, 7, n_symbols=5, device=device)
    assert src.shape == (4, 7) and tgt.shape == (4, 9)
    assert src.dtype == tgt.dtype == torch.long
    assert src.device.type == tgt.device.type == device.type
    assert ((src >= FIRST_SYMBOL_ID) & (src < task_vocab_size(5))).all()
    assert (tgt[:, 0] == BOS_ID).all() and (tgt[:, -1] == EOS_ID).all()


def test_reverse_batch_target_is_reversed_source():
    src, tgt = reverse_batch(8, 6, n_symbols=10)
    torch.testing.assert_close(tgt[:, 1:-1], src.flip(1))
    assert tgt[0, 1:-1].tolist() == src[0].tolist()[::-1]


def test_copy_batch_target_is_source():
    src, tgt = copy_batch(8, 6, n_symbols=10)
    torch.testing.assert_close(tgt[:, 1:-1], src)


def test_seq2seq_batches_follow_the_generator():
    first = reverse_batch(3, 5, 4, generator=torch.Generator().manual_seed(1))
    second = reverse_batch(3, 5, 4, generator=torch.Generator().manual_seed(1))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


def test_addition_dataset_is_seeded_and_parses_back():
    examples = addition_examples(50, n_digits=3, chain_of_thought=True, seed=7)
    assert examples == addition_examples(50, n_digits=3, chain_of_thought=True, seed=7)
    assert examples != addition_examples(50, n_digits=3, chain_of_thought=True, seed=8)
    for prompt, target in examples:
        a, b = map(int, prompt.removesuffix("=").split("+"))
        assert max(a, b) < 1000
        assert extract_answer(prompt + target) == a + b


def test_addition_dataset_direct_format():
    for prompt, target in addition_examples(20, n_digits=2, chain_of_thought=False, seed=0):
        a, b = map(int, prompt.removesuffix("=").split("+"))
        assert target == f"{a + b}."


def test_corpus_is_large_english_text():
    corpus = load_corpus()
    assert len(corpus) >= 300_000
    assert corpus.count(" the ") > 1000
    assert "\n\n\n" not in corpus and corpus == corpus.strip()
    assert load_corpus(max_chars=1000) == corpus[:1000]


def test_corpus_is_offline_and_deterministic_across_interpreters():
    # A fresh interpreter with a different hash seed and no network builds the same text.
    script = (
        "import socket, hashlib\n"
        "def refuse(*args, **kwargs): raise OSError('network access attempted')\n"
        "socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse\n"
        "from tfcourse.data import load_corpus\n"
        "print(hashlib.sha256(load_corpus().encode()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(tfcourse.data.__file__).parents[1],
        check=True,
    )
    assert result.stdout.strip() == hashlib.sha256(load_corpus().encode()).hexdigest()


def test_lm_batches_targets_are_inputs_shifted_by_one(device):
    ids = torch.arange(100, 200)
    x, y = lm_batches(ids, batch_size=16, block_size=8, device=device)
    assert x.shape == y.shape == (16, 8) and x.device.type == device.type
    torch.testing.assert_close(y[:, :-1], x[:, 1:])
    torch.testing.assert_close(y, x + 1)  # ids are consecutive integers
    assert x.min() >= 100 and y.max() <= 199


def test_lm_batches_covers_the_whole_stream():
    ids = torch.arange(10)
    x, y = lm_batches(ids, batch_size=500, block_size=3)
    assert set(x[:, 0].tolist()) == set(range(7))
    assert y[:, -1].max() == 9


def test_lm_batches_rejects_short_streams():
    with pytest.raises(ValueError):
        lm_batches(torch.arange(8), batch_size=2, block_size=8)
