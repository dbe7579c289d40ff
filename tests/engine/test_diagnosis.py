"""The generic relations between a wrong output and the right one (autograder.diagnosis), on made-up tensors
and on the learners' slips of every kind, and the report that carries them: the table of cases, the numbers
that differ on screen, advice that fits a wrong shape, and the hint footer."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.compare import compare, distinct, shape_advice
from autograder.diagnosis import Call, relate

TOLERANCE = (1e-10, 1e-10)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.softmax(x, dim)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 5, 16, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 5, 5, generator=g) < 0.7
    mask[..., 0] = True
    return q, k, v, mask


def relation(actual, expected, call=None) -> str:
    return relate(actual, expected, TOLERANCE, call)


def test_axes_swapped_are_named():
    e = torch.randn(3, 4, 4, dtype=torch.float64)
    assert "dims 1 and 2 swapped" in relation(e.transpose(1, 2), e)


def test_a_reshape_without_its_transpose_is_a_layout():
    x = torch.randn(2, 5, 4 * 3, dtype=torch.float64)
    right = x.view(2, 5, 4, 3).transpose(1, 2)  # (batch, heads, seq, d_head)
    wrong = x.view(2, 4, 5, 3)
    assert "transpose first" in relation(wrong, right)


def test_sorted_values_are_the_right_ones_in_another_order():
    e = torch.randn(3, 7, dtype=torch.float64)
    assert "another order (sorted)" in relation(e.sort(dim=-1, descending=True).values, e)


def test_normalised_along_the_wrong_axis():
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    message = relation(torch.softmax(x, 1), torch.softmax(x, -1))
    assert "sums to 1 along dim 1 (dim=-2)" in message and "normalise over dim=-1" in message


def test_normalised_over_everything():
    x = torch.randn(3, 6, dtype=torch.float64)
    assert "all its entries together" in relation(torch.softmax(x.flatten(), 0).view(3, 6), torch.softmax(x, -1))


@pytest.mark.parametrize("factor, name", [(math.sqrt(16), "sqrt(16)"), (1 / 16, "1/16"), (1 / math.sqrt(16), "1/sqrt(16)")])
def test_a_constant_factor_is_named_from_the_inputs_sizes(factor, name):
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    call = Call(lambda t: t * 2, (x,), {}, ("x",))
    message = relation(2 * x * factor, 2 * x, call)
    assert "times" in message and f"(= {name})" in message


def test_a_flipped_sign():
    e = torch.randn(4, 3, dtype=torch.float64)
    assert "opposite sign" in relation(-e, e)


def test_a_shift_along_the_sequence():
    e = torch.randn(10, 8, dtype=torch.float64)
    shifted = torch.cat([e[3:], torch.zeros(3, 8, dtype=torch.float64)])
    assert "shifted by 3 positions along dim 0" in relation(shifted, e)


def test_arguments_swapped(qkv):
    q, k, v, _ = qkv
    call = Call(attention, (q, k, v), {}, ("q", "k", "v"))
    assert "`q` and `k` swapped" in relation(attention(k, q, v), attention(q, k, v), call)


def test_an_argument_replaced_by_another(qkv):
    q, k, v, _ = qkv
    call = Call(attention, (q, k, v), {}, ("q", "k", "v"))
    assert "`v` replaced by `k`" in relation(attention(q, k, k), attention(q, k, v), call)


def test_a_mask_inverted_or_ignored(qkv):
    q, k, v, mask = qkv
    call = Call(attention, (q, k, v), {"mask": mask}, ("q", "k", "v"))
    expected = attention(q, k, v, mask)
    assert "mask `mask` inverted" in relation(attention(q, k, v, ~mask), expected, call)
    assert "without the mask `mask`" in relation(attention(q, k, v), expected, call)


def test_an_input_scaled_by_a_size(qkv):
    q, k, v, _ = qkv
    call = Call(attention, (q, k, v), {}, ("q", "k", "v"))
    wrong = attention(q / math.sqrt(16), k, v)  # divided by d_k instead of its square root
    assert "multiplied by 0.25 (= 1/sqrt(16))" in relation(wrong, attention(q, k, v), call)


def test_right_where_a_mask_allows_only():
    e = torch.randn(4, 4, dtype=torch.float64)
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    wrong = torch.where(mask, e, e + 1)
    call = Call(lambda x, mask: x, (e,), {"mask": mask}, ("x",))
    assert "part of the output" in (message := relation(wrong, e, call)) and "where the mask `mask` is False" in message


def test_right_in_the_first_positions_only():
    e = torch.randn(6, 3, dtype=torch.float64)
    wrong = e.clone()
    wrong[4:] += 1
    assert "the first 4 positions are right" in relation(wrong, e)


def test_a_tuple_is_analysed_at_its_first_wrong_item():
    x = torch.randn(3, 5, dtype=torch.float64)
    right = (x, torch.softmax(x, -1))
    assert "output[1] sums to 1 along dim 0" in relation((x, torch.softmax(x, 0)), right)


def test_nothing_is_said_of_an_unrelated_output():
    e = torch.randn(4, 5, dtype=torch.float64)
    assert relation(torch.randn(4, 5, dtype=torch.float64), e) == ""


def test_numbers_are_shown_with_digits_that_differ():
    assert distinct(0.1234567891, 0.1234567999) == ("0.12345679", "0.1234568")
    message = compare(torch.tensor([1.0000001], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64),
                      (1e-12, 1e-12)).message
    assert "expected 1, got 1.0000001" in message and "off by 1e-07" in message


@pytest.mark.parametrize("actual, expected, words", [
    ((2, 5, 4), (2, 4, 5), "another order"),
    ((2, 5, 1), (2, 5), "keepdim"),
    ((2, 5), (2, 5, 1), "keepdim=True"),
    ((2, 6, 8), (2, 5, 8), "dim 1 has 6 entries where 5"),
    ((2, 40), (2, 5, 8), "grouped differently"),
])
def test_shape_advice_fits_the_shapes(actual, expected, words):
    assert words in shape_advice(actual, expected)


def test_infinities_expected_by_a_filter_get_advice_about_which_entries():
    expected = torch.tensor([1.0, float("-inf"), 0.5], dtype=torch.float64)
    actual = torch.tensor([1.0, float("-inf"), float("-inf")], dtype=torch.float64)
    message = compare(actual, expected, (1e-12, 1e-12)).message
    assert "this entry must be kept" in message and "exp() overflowing" not in message


def test_an_output_off_by_rounding_is_no_rearrangement_or_shift():
    e = torch.randn(2, 3, 8, dtype=torch.float64) + 300
    nearly = e + 1e-9 * torch.randn(2, 3, 8, dtype=torch.float64)
    assert "another order" not in relation(nearly, e) and "shifted" not in relation(nearly, e)
