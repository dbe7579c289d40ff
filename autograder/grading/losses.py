"""Why a graded cell lost its points when the reason is not a wrong answer.

A wrong answer is the learner's to find in the feedback; an instructor reading a class's
summary needs to see the other losses at a glance: a notebook that could not be read or
graded, a notebook of another lesson, code that ran out of time, a process that crashed,
a function that is not defined. Each is recorded per graded cell (nbgrader's grade id) in
:attr:`autograder.grading.gradebook.NotebookGrades.losses`, so a summary built from the
journal shows them for submissions graded by earlier runs too.
"""

from __future__ import annotations

from typing import Any, Protocol

from autograder.grading.plan import Check, NotebookPlan

CORRUPT = "corrupt notebook"
NOT_READ = "notebook missing or refused"
WRONG_LESSON = "wrong lesson"
TIMEOUT = "timeout"
CRASH = "crash"
MISSING = "missing function"
UNGRADABLE = "not gradable"


class CheckResults(Protocol):
    """What the sandbox reported for one check (:class:`autograder.grading.pipeline._TaskResults`)."""

    missing: Any
    produced: dict[int, Any]


def loss(kind: str, detail: str) -> str:
    """A loss as the summary shows it: ``"timeout: the notebook ran longer than 180 s"``."""
    first_line = detail.strip().splitlines()[0] if detail.strip() else ""
    return f"{kind}: {first_line[:300]}" if first_line else kind


def on_every_cell(plan: NotebookPlan, kind: str, detail: str) -> dict[str, str]:
    """The same loss on every graded cell (a notebook that could not be graded at all)."""
    return {grade_id: loss(kind, detail) for grade_id in plan.graded}


def run_losses(plan: NotebookPlan, results: dict[int, CheckResults], ending: str | None,
               timed_out: bool) -> dict[str, str]:
    """The losses of a notebook that ran: per graded cell, the first of its checks whose checked name is not
    defined, whose cases the run never reached (``ending`` says why: past the wall-clock limit when
    ``timed_out``, else a crash), or whose call ran past its time."""
    found = {}
    for grade_id, cell in plan.graded.items():
        for check, task in zip(cell.checks, cell.tasks):
            reason = _check_loss(plan, check, task, results.get(task), ending, timed_out)
            if reason:
                found[grade_id] = reason
                break
    return found


def _check_loss(plan: NotebookPlan, check: Check, task: int, result: CheckResults | None, ending: str | None,
                timed_out: bool) -> str | None:
    name = check.exercise.name
    if result is not None and result.missing is not None:
        return loss(MISSING, f"`{name}` is not defined")
    produced = {} if result is None else result.produced
    if ending and len(produced) < len(plan.prepared[task]):
        return loss(TIMEOUT if timed_out else CRASH, ending)
    slow = next((p.failure for p in produced.values() if p.failure is not None and p.failure.stage == "timeout"),
                None)
    return loss(TIMEOUT, f"`{name}`: {slow.message}") if slow else None
