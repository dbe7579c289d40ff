"""The instructor's side of a notebook: which cells are graded, by which checks, on which cases.

Everything here comes from the instructor's two notebooks, never from a submission: the
source notebook (with hidden tests) says which cells are graded, for how many points, and
which exercises their ``check(...)`` calls name; the released notebook gives the cells as
learners received them (hidden tests removed) and nbgrader's checksums. Each check becomes
a :class:`~autograder.harness.Task` whose case inputs (visible ones from the public seed,
hidden ones from the instructor's) go to the sandbox, while the reference's answers to the
same cases stay here for judging.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import nbformat
import torch

from autograder.exercise import Exercise
from autograder.grading.course import CourseError
from autograder.harness.forbidden import COURSE_PACKAGES
from autograder.harness.serve import CaseInput, Task
from autograder.registry import find_exercise
from autograder.runner import PreparedCase, prepare_cases
from autograder.seeds import VISIBLE_SEED

LOCKED, SOLUTION, MANUAL, TEST, TASK = "locked", "solution", "manual", "test", "task"


class PlanError(CourseError, ValueError):
    """The instructor's notebooks cannot be graded as they are; the message says how to fix them."""


@dataclass(frozen=True)
class Check:
    """One exercise a graded cell checks: the notebook name it checks, and which case sets count."""

    target: str
    exercise: Exercise
    visible: bool
    hidden: bool


@dataclass(frozen=True)
class GradedCell:
    """An autograded cell: its nbgrader id, points and checks (empty when it calls no ``check``)."""

    grade_id: str
    points: float
    checks: tuple[Check, ...]
    tasks: tuple[int, ...]


@functools.lru_cache(maxsize=1)
def _ipython_transformer():
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return None
    return TransformerManager()


def python_source(cell_source: str) -> str:
    """A code cell's source as plain Python: IPython magics and ``!`` commands become calls."""
    transformer = _ipython_transformer()
    if transformer is None:
        return cell_source
    try:
        return transformer.transform_cell(cell_source)
    except Exception:  # leave the source as written; running it reports the problem
        return cell_source


# A line IPython may rewrite: an escape (! % ? , ; /) first, an assignment from ! or %, or help (?) last.
# IPython re-reads the whole cell once per rewrite, so its work is (1 + such lines) x the cell's length.
ESCAPE_LINE = re.compile(r"^[ \t]*[!%?,;/]|=[ \t]*[!%]|\?[ \t]*$", re.MULTILINE)
MAGIC_LINE = re.compile(r"(?P<indent>[ \t]*)(?P<assign>[\w.]+[ \t]*=[ \t]*)?(?P<escape>!!?|%%?)(?P<rest>.*)")
IPYTHON_BUDGET = 400_000  # characters IPython may read for one submitted notebook (about a second)


class LearnerSource:
    """Turns a learner's code cells into plain Python, as :func:`python_source` does, in bounded time.

    IPython's transformation is exact but its work grows as the cell's length times its number of
    magic lines, so it is used while the notebook's total stays within :data:`IPYTHON_BUDGET`.
    Past it (a cell of thousands of ``!`` lines, say), a cell gets a line-by-line rewrite of its
    ``!``, ``%`` and ``%%`` lines into the same calls, in time linear in its length; the calls do
    nothing under ``tfcourse grade`` either way.
    """

    def __init__(self, budget: int = IPYTHON_BUDGET):
        self.budget = budget

    def __call__(self, cell_source: str) -> str:
        cost = (1 + len(ESCAPE_LINE.findall(cell_source))) * len(cell_source)
        if cost <= self.budget:
            self.budget -= cost
            return python_source(cell_source)
        return magic_lines_as_calls(cell_source)


def magic_lines_as_calls(cell_source: str) -> str:
    """``!cmd``, ``x = !cmd``, ``%magic args`` and a ``%%magic`` cell rewritten line by line into the calls
    IPython makes of them."""
    lines = cell_source.split("\n")
    first = MAGIC_LINE.fullmatch(lines[0])
    if first and first["escape"] == "%%" and not first["indent"] and not first["assign"]:
        name, _, argument = first["rest"].partition(" ")
        body = "\n".join(lines[1:])
        return f"get_ipython().run_cell_magic({name!r}, {argument!r}, {body!r})"
    return "\n".join(_magic_call(line) for line in lines)


def _magic_call(line: str) -> str:
    match = MAGIC_LINE.fullmatch(line)
    if not match or match["escape"] == "%%":
        return line
    indent, assign, rest = match["indent"], match["assign"] or "", match["rest"]
    if match["escape"].startswith("!"):
        return f"{indent}{assign}get_ipython().{'getoutput' if assign else 'system'}({rest!r})"
    name, _, argument = rest.partition(" ")
    return f"{indent}{assign}get_ipython().run_line_magic({name!r}, {argument!r})"


def cell_role(cell: nbformat.NotebookNode) -> str | None:
    """How nbgrader treats a cell of the instructor's notebook; ``None`` for a plain cell."""
    info = cell.get("metadata", {}).get("nbgrader", {})
    if not info.get("grade_id"):
        return None
    if info.get("task"):
        return TASK
    if info.get("solution"):
        return MANUAL if info.get("grade") else SOLUTION
    if info.get("grade"):
        return TEST if cell.cell_type == "code" else MANUAL
    return LOCKED if info.get("locked") else None


class NotebookPlan:
    """How to grade one notebook of an assignment.

    ``release`` is the notebook as learners received it, ``cells`` maps each nbgrader id to
    its cell, ``roles`` to its role, ``order`` lists the ids in the instructor's order and
    ``graded`` the autograded cells; ``tasks[i]`` is sent to the sandbox and ``prepared[i]``
    holds the same cases with the reference's answers. ``imports`` are the modules the
    notebook imports.
    """

    def __init__(self, source_path: Path, release_path: Path, hidden_seed: int, devices: list[torch.device]):
        self.name = source_path.stem
        source = nbformat.read(source_path, as_version=4)
        self.release = release = nbformat.read(release_path, as_version=4)
        self.imports = _imports(c.source for c in release.cells if c.cell_type == "code")
        self.cells = {c.metadata.nbgrader["grade_id"]: c for c in release.cells if cell_role(c)}
        self.order = list(self.cells)
        self.roles = {grade_id: cell_role(cell) for grade_id, cell in self.cells.items()}
        self.tasks: list[Task] = []
        self.prepared: list[list[PreparedCase]] = []
        self.graded: dict[str, GradedCell] = {}
        for cell in source.cells:
            if cell_role(cell) == TEST:
                self._add_graded_cell(cell, hidden_seed, devices)
        missing = [grade_id for grade_id in self.graded if grade_id not in self.cells]
        if missing:
            raise PlanError(f"{release_path} lacks the graded cell {missing[0]!r} of {source_path}: "
                            "regenerate the release (tfcourse release).")

    def _add_graded_cell(self, cell: nbformat.NotebookNode, seed: int, devices: list[torch.device]) -> None:
        grade_id = cell.metadata.nbgrader["grade_id"]
        checks = tuple(self._check(call, grade_id) for call in _check_calls(python_source(cell.source)))
        tasks = tuple(self._add_task(check, seed, devices) for check in checks)
        self.graded[grade_id] = GradedCell(grade_id, float(cell.metadata.nbgrader.get("points", 0)), checks, tasks)

    def _check(self, call: tuple[str, str, bool, bool], grade_id: str) -> Check:
        target, name, visible, hidden = call
        try:
            exercise = find_exercise(name)
        except KeyError as error:
            raise PlanError(f"graded cell {grade_id!r} of {self.name} checks {name!r}: {error.args[0]}") from None
        return Check(target, exercise, visible, hidden)

    def _add_task(self, check: Check, seed: int, devices: list[torch.device]) -> int:
        prepared = prepare_cases(check.exercise, VISIBLE_SEED, False, devices) if check.visible else []
        prepared += prepare_cases(check.exercise, seed, True, devices) if check.hidden else []
        self.tasks.append(Task(check.target, check.exercise.kind, check.exercise.forbidden,
                               [_case_input(p) for p in prepared], check.exercise.gradients))
        self.prepared.append(prepared)
        return len(self.tasks) - 1


def _imports(sources: Iterable[str]) -> set[str]:
    """The modules the notebook's cells import (the grading zygote loads them once, before forking)."""
    modules = set()
    for source in sources:
        try:
            tree = ast.parse(python_source(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module)
    return {name for name in modules if name.split(".")[0] not in COURSE_PACKAGES}


def _case_input(prepared: PreparedCase) -> CaseInput:
    case, context = prepared.case, prepared.context
    weights = None
    if prepared.reference is not None:
        weights = {name: tensor.detach().clone() for name, tensor in prepared.reference.state_dict().items()}
    return CaseInput(case.args, case.kwargs, context.device, context.dtype, case.init, weights, case.training,
                     case.seed)


def _check_calls(source: str) -> list[tuple[str, str, bool, bool]]:
    """``(target, exercise name, visible, hidden)`` for each object the cell's ``check(...)`` calls name."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise PlanError(f"a graded cell is not valid Python: {error}") from None
    found: dict[tuple[str, str], tuple[bool, bool]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _names_check(node.func) and node.args
                and isinstance(node.args[0], ast.Name)):
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        named = keywords.get("name", node.args[1] if len(node.args) > 1 else None)
        target = node.args[0].id
        name = named.value if isinstance(named, ast.Constant) and isinstance(named.value, str) else target
        hidden = isinstance(keywords.get("hidden"), ast.Constant) and keywords["hidden"].value is True
        visible, was_hidden = found.get((target, name), (False, False))
        found[(target, name)] = (visible or not hidden, was_hidden or hidden)
    return [(target, name, visible, hidden) for (target, name), (visible, hidden) in found.items()]


def _names_check(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "check") or (
        isinstance(func, ast.Attribute) and func.attr == "check")
