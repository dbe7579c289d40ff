"""Hint ladders teach: each rung adds an idea in words, and no rung before the last is the code itself.

A rung before the last may name an API or a short expression in backticks, but holds no
statement (an assignment `` = `` or a ``return``) and no backticked snippet longer than
30 characters; the last rung may show the key line.
"""

from __future__ import annotations

import re

import pytest

from autograder.registry import EXERCISES

SNIPPET = re.compile(r"`([^`]*)`")
LONGEST_SNIPPET = 30
STATEMENTS = (" = ", "return ")


def code_in(rung: str) -> list[str]:
    """What makes ``rung`` code rather than a hint: statements, and backticked snippets over the length limit."""
    found = [marker.strip() for marker in STATEMENTS if marker in rung]
    return found + [snippet for snippet in SNIPPET.findall(rung) if len(snippet) > LONGEST_SNIPPET]


@pytest.mark.parametrize("exercise", list(EXERCISES.values()), ids=list(EXERCISES))
def test_no_rung_before_the_last_is_code(exercise):
    for number, rung in enumerate(exercise.hints[:-1], start=1):
        assert not code_in(rung), f"hint {number} of {exercise.name} shows code {code_in(rung)}: {rung}"


@pytest.mark.parametrize("exercise", list(EXERCISES.values()), ids=list(EXERCISES))
def test_each_rung_is_a_new_idea(exercise):
    """At least two rungs, none repeating another."""
    assert len(exercise.hints) >= 2, f"{exercise.name} has fewer than two hints"
    assert len(set(exercise.hints)) == len(exercise.hints), f"{exercise.name} repeats a hint"


def test_the_rules_catch_code():
    assert code_in("return x.transpose(1, 2)") == ["return"]
    assert code_in("counts[pair] = counts.get(pair, 0) + 1") == ["="]
    assert code_in("use `torch.where(total > 0, total, torch.ones_like(total))`")
    assert not code_in("`keepdim=True` keeps the summed dimension, so the result broadcasts against `x`.")
