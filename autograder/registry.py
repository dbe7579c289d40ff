"""Every exercise of the course, by name.

Each module of :mod:`autograder.exercises` specifies one lesson: it sets ``LESSON`` (the
lesson id, such as ``"02-attention"``) and ``EXERCISES`` (its exercises in course order).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

import autograder.exercises
from autograder.exercise import Exercise


def _lesson_modules() -> list:
    """The specification modules, in lesson order."""
    names = [info.name for info in pkgutil.iter_modules(autograder.exercises.__path__)]
    modules = [importlib.import_module(f"autograder.exercises.{name}") for name in names]
    return sorted(modules, key=lambda module: module.LESSON)


EXERCISES: dict[str, Exercise] = {ex.name: ex for module in _lesson_modules() for ex in module.EXERCISES}
LESSONS: tuple[str, ...] = tuple(dict.fromkeys(ex.lesson for ex in EXERCISES.values()))


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
