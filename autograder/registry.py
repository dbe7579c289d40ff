"""Every exercise of the course, by name."""

from __future__ import annotations

import difflib

from autograder.exercise import Exercise
from autograder.exercises import attention, multihead

EXERCISES: dict[str, Exercise] = {ex.name: ex for module in (attention, multihead) for ex in module.EXERCISES}


def find_exercise(name: str) -> Exercise:
    """The exercise called ``name``; a ``KeyError`` with the closest names when there is none."""
    if name in EXERCISES:
        return EXERCISES[name]
    close = difflib.get_close_matches(name, EXERCISES, n=3)
    suggestion = f" Did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"no exercise is called {name!r}.{suggestion} Pass name='...' to check() if you renamed it.")


def lesson_exercises(lesson: str) -> list[Exercise]:
    """The exercises of one lesson (for example ``"02-attention"``), in course order."""
    return [ex for ex in EXERCISES.values() if ex.lesson == lesson]
