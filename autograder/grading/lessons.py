"""Which lesson a notebook belongs to, told by its graded cells.

Every graded cell of the course's notebooks carries an nbgrader id (``check_softmax``) that is
unique across lessons; a notebook is the lesson's whose released notebook shares the most
of its graded ids. A learner who submits lesson 03's notebook as lesson 02 is told so instead
of getting a 0 for every exercise "not defined".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import nbformat

from autograder.grading.course import REPOSITORY
from autograder.registry import LESSONS

RELEASED = REPOSITORY / "exercises"  # the learners' notebooks as released, one folder per lesson


def released_notebook(lesson: str) -> Path:
    """The notebook of ``lesson`` as learners receive it."""
    return RELEASED / lesson / f"{lesson}.ipynb"


def graded_ids(cells: list[Any]) -> set[str]:
    """The nbgrader ids of the graded cells among ``cells`` (entries that are not cells are skipped)."""
    info = [cell.get("metadata", {}).get("nbgrader", {}) for cell in cells if isinstance(cell, dict)]
    return {entry["grade_id"] for entry in info if isinstance(entry, dict) and entry.get("grade") and
            isinstance(entry.get("grade_id"), str)}


@cache
def lesson_ids(lesson: str) -> frozenset[str]:
    """The graded ids of ``lesson``'s released notebook (none when it is missing)."""
    path = released_notebook(lesson)
    if not path.is_file():
        return frozenset()
    return frozenset(graded_ids(nbformat.read(path, as_version=4).cells))


def other_lesson(expected: set[str], lesson: str, notebook: nbformat.NotebookNode) -> str | None:
    """The course's lesson whose graded cells ``notebook`` holds when it shares more of them with that lesson
    than with ``expected`` (the graded ids of ``lesson``, the notebook it was submitted as); else ``None``."""
    ids = graded_ids(notebook.cells)
    own = len(ids & expected)
    shared = {other: len(ids & lesson_ids(other)) for other in LESSONS if other != lesson}
    best = max(shared, key=shared.__getitem__, default=None)
    return best if best is not None and shared[best] > own else None


def wrong_lesson_reason(found: str, expected: str) -> str:
    """What the learner and the instructor are told."""
    return (f"this is lesson {found}'s notebook, not {expected}'s: submit {expected}.ipynb, "
            f"the notebook released for {expected}")
