"""A corpus of natural wrong answers, each with the words its report must contain.

Each lesson's file ``tests/support/wrong_answers/lessonNN.py`` holds ``ANSWERS``: wrong
versions of the lesson's exercises written the way learners write them (their own names,
loops, a forgotten ``keepdim``, a wrong axis, an off-by-one, a tuple not unpacked, ...),
each with the words (case-insensitive) that must occur in the check's report for the
learner to understand the mistake in their own terms.

An answer's ``source`` runs in a fresh namespace holding what the lesson's notebook defines
before its first exercise (the environment cell's imports, the code it gives), plus the
usual aliases (``torch``, ``np``, ``math``, ``nn``, ``F``), as if typed into a notebook cell;
then :func:`autograder.checker.run_check` checks the definition on the visible cases, on
the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import linecache
import math
import pkgutil
import time
from dataclasses import dataclass
from typing import Any

import nbformat
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import tests.support.wrong_answers
from autograder.checker import run_check
from autograder.registry import EXERCISES, LESSONS
from autograder.scores import CheckResult
from tests.support.notebooks import ROOT

CPU = torch.device("cpu")


@dataclass(frozen=True)
class WrongAnswer:
    """A learner's wrong ``source`` for ``exercise`` and the ``words`` its report must contain."""

    exercise: str            # the exercise's name in autograder.registry.EXERCISES
    source: str              # the learner's cell(s), as a learner writes them: a def or a class of that name
    words: tuple[str, ...]   # each must occur (case-insensitive) in the report
    story: str               # one line: the mistake in plain words (for the benchmark's listing)

    @property
    def lesson(self) -> str:
        return EXERCISES[self.exercise].lesson

    @property
    def kind(self) -> str:
        """``"function"`` or ``"module"``: the exercise's kind."""
        return EXERCISES[self.exercise].kind


@dataclass(frozen=True)
class Diagnosis:
    """What the check said about one wrong answer, and how long the check took."""

    answer: WrongAnswer
    result: CheckResult
    seconds: float

    @property
    def missing(self) -> list[str]:
        """The answer's words that the report does not contain."""
        text = self.result.message.lower()
        return [word for word in self.answer.words if word.lower() not in text]

    @property
    def named(self) -> bool:
        """The check failed and its report says every word."""
        return not self.result.passed and not self.missing

    @property
    def first_line(self) -> str:
        return self.result.message.strip().splitlines()[0] if self.result.message.strip() else ""


def _lesson_of_file(module_name: str) -> str:
    """``"lesson03"`` -> ``"03-multihead"``."""
    number = module_name.removeprefix("lesson")
    return next(lesson for lesson in LESSONS if lesson.startswith(f"{number}-"))


def corpus() -> dict[str, list[WrongAnswer]]:
    """Every lesson's wrong answers, by lesson id, in lesson order (lessons without a file are absent)."""
    found = {}
    for info in pkgutil.iter_modules(tests.support.wrong_answers.__path__):
        if info.name.startswith("lesson"):
            module = importlib.import_module(f"tests.support.wrong_answers.{info.name}")
            found[_lesson_of_file(info.name)] = list(module.ANSWERS)
    return {lesson: found[lesson] for lesson in LESSONS if lesson in found}


def answer_ids(lesson: str, answers: list[WrongAnswer]) -> list[str]:
    """``lessonNN-<exercise>-<k>``: the k-th (from 1) answer to that exercise in the lesson's file."""
    seen: dict[str, int] = {}
    ids = []
    for answer in answers:
        seen[answer.exercise] = seen.get(answer.exercise, 0) + 1
        ids.append(f"lesson{lesson[:2]}-{answer.exercise}-{seen[answer.exercise]}")
    return ids


def _notebook(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / lesson / f"{lesson}.ipynb", as_version=4)


def _given_cells(lesson: str) -> list[tuple[int, str]]:
    """The learner notebook's locked cells that are not checks, with their positions (from 1, over all cells):
    the environment cell and the code it gives."""
    return [(number, cell.source) for number, cell in enumerate(_notebook(lesson).cells, start=1)
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("locked")
            and not cell.metadata.get("nbgrader", {}).get("grade")]


def _run_cell(source: str, filename: str, namespace: dict[str, Any]) -> None:
    """Run ``source`` as the notebook cell ``filename`` (``<cell N>``), its lines at hand for tracebacks."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


@functools.cache
def lesson_namespace(lesson: str) -> dict[str, Any]:
    """What the lesson's notebook defines before its exercises, with the usual aliases."""
    namespace: dict[str, Any] = {"__name__": "learner_notebook", "torch": torch, "np": np, "math": math,
                                 "nn": nn, "F": F}
    with contextlib.redirect_stdout(io.StringIO()):
        for number, source in _given_cells(lesson):
            _run_cell(source, f"<cell {number}>", namespace)
    return namespace


@functools.cache
def cell_name(exercise: str) -> str:
    """``<cell N>``, N the position (from 1, over all cells) of the exercise's cell in its learner notebook: the
    file name the grading sandbox gives that cell, which reports quote."""
    cells = _notebook(EXERCISES[exercise].lesson).cells
    number = next(index for index, cell in enumerate(cells, start=1)
                  if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == exercise)
    return f"<cell {number}>"


def definition(answer: WrongAnswer) -> Any:
    """The function or class ``answer.source`` defines, run as the exercise's notebook cell."""
    namespace = dict(lesson_namespace(answer.lesson))
    _run_cell(answer.source, cell_name(answer.exercise), namespace)
    return namespace[answer.exercise]


def diagnose(answer: WrongAnswer) -> Diagnosis:
    """Check the answer's definition on the visible cases on the CPU, timing the check."""
    obj = definition(answer)
    start = time.perf_counter()
    result = run_check(obj, answer.exercise, devices=[CPU])
    return Diagnosis(answer, result, time.perf_counter() - start)
