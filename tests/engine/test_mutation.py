"""Mutation testing of the checks: the mutator itself, and a deterministic sample of every exercise's mutants.

The full sweep (``python -m autograder.mutation``) runs every mutant of every exercise; here
each exercise contributes a few, chosen by its name, so CI covers all of them in minutes.
"""

from __future__ import annotations

import ast

import pytest

from autograder.exercise import Exercise
from autograder.mutation import (
    MUTATION_SEED,
    equivalent_mutants,
    is_killed,
    mutants,
    sample_of,
    solution_cell,
)
from autograder.registry import EXERCISES
from autograder.seeds import HIDDEN_SEED_VARIABLE

SAMPLE = 3
CELL = '''def scaled(q, k):
    """A docstring is not mutated."""
    n = q.shape[-1]
    ### BEGIN SOLUTION
    scores = torch.matmul(q, k.transpose(-2, -1)) @ torch.eye(max(n, 1))
    return -scores.sum(dim=-1) / n
    ### END SOLUTION
'''


def labels(source: str) -> list[str]:
    return [m.label for m in mutants(EXERCISES["attention_scores"], source)]


def test_only_the_learner_written_lines_are_mutated():
    assert all(label.startswith(("line 5,", "line 6,")) for label in labels(CELL))


def test_the_mutator_makes_each_kind_of_change():
    found = " | ".join(labels(CELL))
    for expected in ("Div -> Mult", "MatMult -> Mult", "keep only the left operand", "drop .transpose(...)",
                     "swap the first two arguments", ".sum( -> .mean(", "1 -> 2", "drop USub",
                     "drop the statement"):
        assert expected in found, f"{expected!r} not among: {found}"


def test_every_mutant_is_valid_python_that_differs_from_the_cell():
    for mutant in mutants(EXERCISES["attention_scores"], CELL):
        compile(mutant.source, "<mutant>", "exec")
        assert mutant.source != ast.unparse(ast.parse(CELL))


def test_swaps_that_cannot_change_anything_are_not_mutants():
    """x.transpose(a, b) is x.transpose(b, a), max(a, b) is max(b, a)."""
    swaps = [label for label in labels(CELL) if "swap" in label]
    assert swaps == ["line 5, column 13: swap the first two arguments"]  # torch.matmul(q, k...) only


def test_every_listed_equivalent_mutant_exists():
    """A stale entry (the solution changed since it was listed) would hide a real survivor."""
    for name, listed in equivalent_mutants().items():
        source, _ = solution_cell(EXERCISES[name])
        current = {m.label for m in mutants(EXERCISES[name], source)}
        assert set(listed) <= current, f"{name}: no longer a mutant: {sorted(set(listed) - current)}"
        assert all(reason.strip() for reason in listed.values()), f"{name}: every entry needs its reason"


def sampled(exercise: Exercise) -> list:
    source, namespace = solution_cell(exercise)
    return [(mutant, namespace) for mutant in sample_of(mutants(exercise, source), SAMPLE)]


@pytest.mark.slow
@pytest.mark.parametrize("exercise", list(EXERCISES.values()), ids=list(EXERCISES))
def test_the_checks_fail_every_sampled_mutant_that_is_not_equivalent(exercise, monkeypatch):
    monkeypatch.setenv(HIDDEN_SEED_VARIABLE, str(MUTATION_SEED))
    equivalent = equivalent_mutants().get(exercise.name, {})
    survivors = [mutant.label for mutant, namespace in sampled(exercise)
                 if mutant.label not in equivalent and not is_killed(mutant, namespace)]
    assert not survivors, (f"{exercise.name}: no check fails these mutants of the solution: {survivors}. "
                           "Add a case that tells them apart, or list them with the reason they are "
                           "equivalent in autograder/exercises/equivalent_mutants.json")
