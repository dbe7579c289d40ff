"""The named mistake behind a failed check: what a class report groups learners by.

A failed check is named by the known mistake the engine diagnoses (an exercise's listed
mistake, e.g. ``scores not scaled by sqrt(d_k)``); when none explains it, by the stage at which
its first failure went wrong (an exception, a wrong shape, wrong values, ...). The name is
recorded in the grading journal beside the check's verdict (:mod:`autograder.grading.gradebook`)
and never holds anything the learner wrote, so it can be counted across a class.
"""

from __future__ import annotations

from autograder.exercise import Exercise
from autograder.harness.mismatch import Mismatch
from autograder.runner import CaseOutcome, diagnose

STAGE_MISTAKES = {
    "raises": "raises an error",
    "forbidden": "uses a forbidden API",
    "timeout": "too slow or never returns",
    "input": "changes its inputs in place",
    "type": "returns the wrong type",
    "shape": "wrong shape",
    "dtype": "wrong dtype",
    "device": "wrong device",
    "nan": "NaN or infinity in the output",
    "values": "wrong values",
    "gradients": "wrong gradients",
}
NO_CHECK = "the graded cell calls no check()"
NOT_DEFINED = "not defined when its check runs"
UNGRADABLE = "the notebook could not be graded"


def stage_mistake(mismatch: Mismatch) -> str:
    """The name of a failure that no known mistake explains: its stage, in words."""
    return STAGE_MISTAKES.get(mismatch.stage, mismatch.stage)


def named_mistake(exercise: Exercise, outcomes: list[CaseOutcome]) -> str | None:
    """The known mistake that explains the failed cases, else the first failure's stage; ``None`` when
    every case passes."""
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return None
    mistake = diagnose(exercise, outcomes)
    if mistake is not None:
        return mistake.name
    first = next((o for o in failed if not o.hidden), failed[0])
    return stage_mistake(first.mismatch) if first.mismatch else STAGE_MISTAKES["values"]
