import random

import numpy as np
import pytest
import torch

from tfcourse.reasoning import (
    extract_answer,
    fit_power_law,
    majority_vote,
    make_addition_example,
)

# --- addition examples ------------------------------------------------------------


def test_addition_example_formats():
    assert make_addition_example(58, 67, chain_of_thought=False) == ("58+67=", "125.")
    assert make_addition_example(58, 67, chain_of_thought=True) == (
        "58+67=",
        "8+7+0=15,5+6+1=12,=125.",
    )


def test_scratchpad_pads_the_shorter_operand_and_handles_zero():
    assert make_addition_example(5, 123, True)[1] == "5+3+0=8,0+2+0=2,0+1+0=1,=128."
    assert make_addition_example(0, 0, True) == ("0+0=", "0+0+0=0,=0.")
    assert make_addition_example(999, 1, True)[1] == "9+1+0=10,9+0+1=10,9+0+1=10,=1000."


def test_scratchpad_steps_are_correct_column_sums():
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.randrange(10**6), rng.randrange(10**6)
        _, target = make_addition_example(a, b, chain_of_thought=True)
        *steps, _ = target.split(",")
        carry = 0
        for step in steps:
            operands, column_sum = step.split("=")
            digit_a, digit_b, carry_in = map(int, operands.split("+"))
            assert carry_in == carry
            assert int(column_sum) == digit_a + digit_b + carry_in
            carry = int(column_sum) // 10
        assert len(steps) == max(len(str(a)), len(str(b)))


@pytest.mark.parametrize("chain_of_thought", [False, True])
def test_extract_answer_parses_random_examples(chain_of_thought):
    rng = random.Random(1)
    for _ in range(500):
        a, b = rng.randrange(10 ** rng.randint(1, 8)), rng.randrange(10 ** rng.randint(1, 8))
        prompt, target = make_addition_example(a, b, chain_of_thought)
        assert extract_answer(target) == a + b
        assert extract_answer(prompt + target) == a + b
        assert extract_answer(prompt + target + "7+1=") == a + b  # text after "." is ignored


def test_addition_rejects_negative_operands():
    with pytest.raises(ValueError):
        make_addition_example(-1, 3, chain_of_thought=False)


@pytest.mark.parametrize(
    "text",
    ["", "58+67=", "58+67=125", "8+7+0=15,5+", "=12a.", "=.", "no digits here.", "=1 2."],
)
def test_extract_answer_returns_none_without_answer(text):
    assert extract_answer(text) is None


# --- self-consistency -------------------------------------------------------------


def test_majority_vote_picks_most_common():
    assert majority_vote([3, 5, 5, 3, 5]) == 5
    assert majority_vote([None, None, 4]) == 4
    assert majority_vote(["b", "a", "a"]) == "a"


def test_majority_vote_breaks_ties_by_first_occurrence():
    assert majority_vote([7, 2, 2, 7]) == 7
    assert majority_vote([None, 2, 7, 7, 2]) == 2


def test_majority_vote_of_nothing_is_none():
    assert majority_vote([]) is None
    assert majority_vote([None, None]) is None


# --- scaling laws -----------------------------------------------------------------


@pytest.mark.parametrize("convert", [list, np.array, torch.tensor], ids=["list", "numpy", "torch"])
def test_fit_power_law_recovers_exact_parameters(convert):
    sizes = [1e3, 1e4, 1e5, 1e6, 1e7]
    losses = [12.0 * size**-0.076 for size in sizes]
    a, alpha = fit_power_law(convert(sizes), convert(losses))
    assert isinstance(a, float) and isinstance(alpha, float)
    assert a == pytest.approx(12.0, rel=1e-6)
    assert alpha == pytest.approx(0.076, rel=1e-6)


def test_fit_power_law_with_noise():
    rng = np.random.default_rng(0)
    sizes = np.logspace(3, 9, 20)
    losses = 5.0 * sizes**-0.3 * np.exp(rng.normal(0.0, 0.01, size=sizes.shape))
    a, alpha = fit_power_law(sizes, losses)
    assert alpha == pytest.approx(0.3, abs=0.01)
    assert a == pytest.approx(5.0, rel=0.15)


@pytest.mark.parametrize(
    "sizes, losses",
    [
        ([10.0], [1.0]),
        ([], []),
        ([10.0, 100.0], [1.0]),
        ([10.0, -100.0], [1.0, 0.5]),
        ([10.0, 100.0], [1.0, 0.0]),
        ([10.0, 10.0], [1.0, 0.5]),
    ],
)
def test_fit_power_law_rejects_bad_input(sizes, losses):
    with pytest.raises(ValueError):
        fit_power_law(sizes, losses)
