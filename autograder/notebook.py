"""A notebook's graded cells, and the report a learner reads of its score.

A graded cell is one that nbgrader marks ``grade: true`` with ``points``; it earns its
points when every check it calls passes. The report of a failed cell is the checks'
learner-facing message, never a traceback.
"""

from __future__ import annotations

from typing import Iterable

import nbformat

from autograder.scores import NotebookScore


def graded_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The cells nbgrader grades automatically, in notebook order."""
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "code"]


def format_report(score: NotebookScore, notes: Iterable[str] = ()) -> str:
    """A readable report: one line per graded cell, then what was not given to the learner's code."""
    lines = [f"{score.assignment}: {score.score:g} / {score.max_score:g} points"]
    for check in score.checks:
        mark = "PASS" if check.passed else "FAIL"
        lines.append(f"  {mark} {check.name} ({check.points:g}/{check.max_points:g})")
        if not check.passed:
            lines += [f"       {line}" for line in check.message.splitlines()]
    lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines)
