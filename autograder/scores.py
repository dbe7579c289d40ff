"""The verdict records: one check, and one notebook's graded checks.

The same records serve the learner's ``check()`` and ``tfcourse check``, the class grader
and the gradebook's journal, so a self-check and a grade are reported in one shape (the
JSON of ``tfcourse check --json`` and ``tfcourse grade --json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CellCheck:
    """The verdict on one check (for a notebook, ``name`` is its graded cell's ``grade_id``
    without the ``check_`` prefix)."""

    name: str
    points: float
    max_points: float
    passed: bool
    message: str


@dataclass
class CheckResult(CellCheck):
    """What ``check()`` returns: the verdict, and the verdict on every case behind it
    (:class:`~autograder.runner.CaseOutcome`)."""

    outcomes: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's value: ``check()`` has already printed the report."""


@dataclass
class NotebookScore:
    """A notebook's score, in the JSON shape of ``tfcourse check --json``."""

    student: str
    assignment: str
    score: float
    max_score: float
    checks: list[CellCheck] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))
