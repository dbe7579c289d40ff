"""Reasoning and scaling: chain-of-thought addition, answer extraction, self-consistency
voting and power-law fits of loss against scale.

Addition problems are plain text for a decoder-only model. The prompt is ``"a+b="``;
the target is either the answer or a scratchpad followed by the answer, and always ends
with the terminator ``"."``::

    prompt      "58+67="
    direct      "125."
    scratchpad  "8+7+0=15,5+6+1=12,=125."

A scratchpad step ``x+y+c=s`` adds the digits ``x`` and ``y`` of one column (least
significant column first) and the carry ``c`` out of the previous column (0 for the
first column); the carry into the next column is the tens digit of ``s``. The shorter
operand is padded with leading zeros, so both operands contribute a digit to every step.
Steps are separated by ``","`` and the final ``",=<answer>"`` gives the sum.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
import torch

TERMINATOR = "."

Answer = TypeVar("Answer", bound=Hashable)


def _digits_least_significant_first(n: int, width: int) -> list[int]:
    """``(58, 3) -> [8, 5, 0]``: the decimal digits of ``n``, zero-padded to ``width``."""
    return [int(digit) for digit in reversed(str(n).zfill(width))]


def _scratchpad(a: int, b: int) -> str:
    """Column-by-column working of ``a + b``: ``(58, 67) -> "8+7+0=15,5+6+1=12"``."""
    width = max(len(str(a)), len(str(b)))
    digit_pairs = zip(
        _digits_least_significant_first(a, width), _digits_least_significant_first(b, width)
    )
    steps, carry = [], 0
    for digit_a, digit_b in digit_pairs:
        column_sum = digit_a + digit_b + carry
        steps.append(f"{digit_a}+{digit_b}+{carry}={column_sum}")
        carry = column_sum // 10
    return ",".join(steps)


def make_addition_example(a: int, b: int, chain_of_thought: bool) -> tuple[str, str]:
    """One addition problem as ``(prompt, target)`` strings.

    Examples::

        make_addition_example(58, 67, False) == ("58+67=", "125.")
        make_addition_example(58, 67, True) == ("58+67=", "8+7+0=15,5+6+1=12,=125.")

    In both formats the answer sits between the last ``"="`` and the terminator ``"."``,
    which is what ``extract_answer`` reads.

    Raises:
        ValueError: if ``a`` or ``b`` is negative.
    """
    if a < 0 or b < 0:
        raise ValueError(f"operands must be non-negative, got {a} and {b}")
    answer = f"{a + b}{TERMINATOR}"
    target = f"{_scratchpad(a, b)},={answer}" if chain_of_thought else answer
    return f"{a}+{b}=", target


def extract_answer(text: str) -> int | None:
    """The final answer in a generated text, or ``None`` if it has none.

    Rule: cut ``text`` at its first terminator ``"."`` (anything generated after it is
    ignored); the answer is the run of digits that ends at the terminator and starts
    right after the last ``"="``, or at the start of the text when the text is only the
    answer (a direct-format completion such as ``"125."``). Without a terminator, or
    with anything but digits between the last ``"="`` and the terminator, there is no
    answer.

    Examples: ``"125."`` -> 125; ``"58+67=8+7+0=15,5+6+1=12,=125.\\n9"`` -> 125;
    ``"58+67=12"`` (unterminated) -> None; ``"8+7+0=15,5+"`` -> None.
    """
    head, terminator, _ = text.partition(TERMINATOR)
    match = re.search(r"(?:^|=)(\d+)$", head)
    return int(match.group(1)) if terminator and match else None


def majority_vote(answers: Sequence[Answer | None]) -> Answer | None:
    """Self-consistency: the most common non-``None`` answer.

    Ties go to the answer that occurs first in ``answers``. Returns ``None`` when
    ``answers`` is empty or contains only ``None``.
    """
    counts = Counter(answer for answer in answers if answer is not None)
    if not counts:
        return None
    return counts.most_common(1)[0][0]  # most_common keeps first-seen order among ties


def _as_float_array(values: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    """A list, array or tensor (any device) -> 1-D float64 NumPy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def fit_power_law(
    sizes: Sequence[float] | np.ndarray | torch.Tensor,
    losses: Sequence[float] | np.ndarray | torch.Tensor,
) -> tuple[float, float]:
    """Fit ``loss = a * size ** (-alpha)`` by least squares in log-log space.

    Taking logs gives a straight line, ``log(loss) = log(a) - alpha * log(size)``, so a
    degree-1 least-squares fit of ``log(loss)`` on ``log(size)`` has slope ``-alpha`` and
    intercept ``log(a)``.

    Args:
        sizes: (n,) positive model sizes (or data sizes, or compute).
        losses: (n,) positive losses.

    Returns:
        ``(a, alpha)`` as Python floats.

    Raises:
        ValueError: fewer than 2 points, mismatched lengths, fewer than 2 distinct sizes,
            or a value that is not positive.
    """
    log_sizes, log_losses = _log_points(_as_float_array(sizes), _as_float_array(losses))
    slope, intercept = np.polyfit(log_sizes, log_losses, deg=1)
    return float(np.exp(intercept)), float(-slope)


def _log_points(sizes: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the points of ``fit_power_law`` and return ``(log(sizes), log(losses))``."""
    if len(sizes) != len(losses):
        raise ValueError(f"got {len(sizes)} sizes but {len(losses)} losses")
    if len(sizes) < 2:
        raise ValueError(f"need at least 2 points to fit a power law, got {len(sizes)}")
    if not (np.all(sizes > 0) and np.all(losses > 0)):
        raise ValueError("sizes and losses must all be positive")
    if len(np.unique(sizes)) < 2:
        raise ValueError("need at least 2 distinct sizes to fit a slope")
    return np.log(sizes), np.log(losses)
