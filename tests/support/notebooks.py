"""Helpers for tests that use the course notebooks."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import nbformat

from autograder.exercise import Exercise
from autograder.registry import LESSONS

ROOT = Path(__file__).resolve().parents[2]
GRADED_LESSONS = LESSONS  # every lesson with a specification in autograder/exercises


def solution_notebook(lesson: str) -> Path:
    return ROOT / "solutions" / lesson / f"{lesson}.ipynb"


@functools.cache
def solution_namespace(lesson: str) -> SimpleNamespace:
    """The functions and classes one solution notebook defines: every code cell but the graded checks."""
    namespace: dict = {"__name__": "learner_notebook"}
    nb = nbformat.read(solution_notebook(lesson), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
            exec(compile(cell.source, f"<{lesson} notebook>", "exec"), namespace)
    return SimpleNamespace(**namespace)


def solution_of(exercise: Exercise):
    """The solution notebook's definition of ``exercise`` (each lesson's notebook runs on its own)."""
    return getattr(solution_namespace(exercise.lesson), exercise.name)


def comparable(path: Path) -> list[dict]:
    """A notebook's cells without execution state: what must match between two generations."""
    nb = json.loads(path.read_text())
    return [{k: cell[k] for k in ("cell_type", "source", "metadata")} for cell in nb["cells"]]
