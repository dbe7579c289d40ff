"""Decoding strategies."""

import math

import pytest
import torch
from torch.testing import assert_close

from tfcourse.generation import beam_search, greedy_decode, sample_next, top_k_filter, top_p_filter

INF = float("inf")


def test_top_k_keeps_the_k_largest(device):
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [0.0, -1.0, 5.0, 5.0]], device=device)
    expected = torch.tensor([[-INF, 4.0, 3.0, -INF], [-INF, -INF, 5.0, 5.0]], device=device)
    assert torch.equal(top_k_filter(logits, 2), expected)
    assert torch.equal(top_k_filter(logits, 10), logits)
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_top_p_keeps_the_smallest_nucleus(device):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], device=device)
    logits = probs.log()[[2, 0, 3, 1]]  # shuffled: 0.15, 0.5, 0.05, 0.3
    kept = torch.isfinite(top_p_filter(logits, 0.75))
    assert kept.tolist() == [False, True, False, True]  # 0.5 + 0.3 reaches 0.75
    assert torch.isfinite(top_p_filter(logits, 0.79)).tolist() == [False, True, False, True]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [True, True, False, True]


def test_top_p_always_keeps_the_most_likely_token(device):
    logits = torch.tensor([[10.0, 0.0, 0.0]], device=device)
    assert torch.isfinite(top_p_filter(logits, 1e-6)).tolist() == [[True, False, False]]


def test_sample_next_is_reproducible_with_a_seeded_generator(device):
    logits = torch.randn(4, 50, device=device)
    draws = [sample_next(logits, top_k=10, generator=torch.Generator(device).manual_seed(3)) for _ in range(2)]
    assert torch.equal(*draws)
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


def test_sample_next_respects_the_filters(device):
    logits = torch.arange(10.0, device=device).repeat(200, 1)
    generator = torch.Generator(device).manual_seed(0)
    assert (sample_next(logits, top_k=3, generator=generator) >= 7).all()
    assert (sample_next(logits, top_p=0.5, generator=generator) >= 8).all()


def test_sample_next_follows_the_distribution():
    """A chi-squared test at the 0.1% level, deterministic through the seed."""
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 20_000
    draws = sample_next(probs.log().repeat(n, 1), generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=4).double()
    chi2 = ((counts - n * probs) ** 2 / (n * probs)).sum()
    assert chi2 < 16.27  # chi-squared, 3 degrees of freedom, p = 0.001


class BigramTable:
    """A step function whose next-token log-probabilities depend only on the last token."""

    def __init__(self, log_probs: torch.Tensor):
        self.log_probs = log_probs

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.log_probs[ids[:, -1]]


def bigram(rows: list[list[float]]) -> BigramTable:
    return BigramTable(torch.tensor(rows).log())


def test_greedy_stops_at_eos_and_pads():
    # tokens: 0 = EOS, 1, 2
    table = bigram([[1.0, 0.0, 0.0], [0.6, 0.0, 0.4], [0.0, 0.7, 0.3]])
    out = greedy_decode(table, torch.tensor([[2], [1]]), max_new_tokens=5, eos_id=0)
    assert out.tolist() == [[2, 1, 0], [1, 0, 0]]


def test_beam_search_finds_what_greedy_misses():
    # From 3: greedy takes 1 (0.6) then at best 0.4; beam finds 2 (0.4) then 1.0 = 0.4 > 0.24.
    table = bigram([
        [1.0, 0.0, 0.0, 0.0],
        [0.4, 0.3, 0.3, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.6, 0.4, 0.0],
    ])
    prefix = torch.tensor([3])
    assert greedy_decode(table, prefix[None], 2, eos_id=0)[0].tolist() == [3, 1, 0]
    assert beam_search(table, prefix, beam_width=2, max_new_tokens=4, eos_id=0).tolist() == [3, 2, 0]


def test_length_penalty_changes_the_winner():
    # "3 0" has probability 0.5; "3 1 0" has 0.5 * 0.9 = 0.45: shorter wins without a penalty,
    # longer wins when scores are divided by length**2.
    table = bigram([
        [1.0, 0.0, 0.0, 0.0],
        [0.9, 0.1, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.5, 0.5, 0.0, 0.0],
    ])
    prefix = torch.tensor([3])
    assert beam_search(table, prefix, 2, 5, eos_id=0, length_penalty=0.0).tolist() == [3, 0]
    assert beam_search(table, prefix, 2, 5, eos_id=0, length_penalty=2.0).tolist() == [3, 1, 0]


def test_beam_search_with_one_beam_is_greedy():
    torch.manual_seed(0)
    table = BigramTable(torch.log_softmax(torch.randn(12, 12), dim=-1))
    prefix = torch.tensor([5])
    assert torch.equal(beam_search(table, prefix, 1, 8), greedy_decode(table, prefix[None], 8)[0])


def test_beam_search_result_has_the_best_score_among_all_short_sequences():
    torch.manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(5, 5), dim=-1)
    table = BigramTable(log_probs)
    best = beam_search(table, torch.tensor([4]), beam_width=25, max_new_tokens=2)
    scores = log_probs[4][:, None] + log_probs
    assert_close(log_probs[4, best[1]] + log_probs[best[1], best[2]], scores.max())
    assert math.isfinite(scores.max().item())


def test_unlikely_eos_endings_do_not_cut_the_search_short():
    # Every token almost surely leads to the next one (1 -> 2 -> 3 -> 1 ...); EOS is a 1% chance.
    rows = [[1.0, 0.0, 0.0, 0.0]] + [[0.01] * 4 for _ in range(3)]
    for token in (1, 2, 3):
        rows[token][token % 3 + 1] = 0.97
    out = beam_search(bigram(rows), torch.tensor([1]), beam_width=3, max_new_tokens=6, eos_id=0)
    assert out.tolist() == [1, 2, 3, 1, 2, 3, 1]
