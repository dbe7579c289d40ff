"""A learner's notebook, read as untrusted input: what to run, in which order, and what to hand back.

A submission decides only the content of the cells learners may edit. The instructor's
cells are found by their nbgrader ids; one the learner deleted is put back after the
nearest instructor cell still present (as nbgrader's ``add_missing_cells`` does), a locked
cell always runs as the instructor wrote it, and a graded cell's content is never read from
the submission: its checks come from the :class:`~autograder.grading.plan.NotebookPlan`.

Before anything runs, each check's target is looked up in the learner's code: the last
statement that binds its name (a ``def``, a ``class``, an assignment or an import) is
scanned for the APIs the exercise forbids and for the course's packages, and a check whose
target names them is rejected with that reason instead of being run.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from typing import Any, Iterator

import nbformat

from autograder.grading.plan import LOCKED, MANUAL, SOLUTION, TEST, LearnerSource, NotebookPlan, python_source
from autograder.grading.submitted import MAX_NOTEBOOK_BYTES
from autograder.harness.forbidden import UnscannableCode, forbidden_use, scan_code
from autograder.harness.mismatch import Mismatch

MAX_CELLS = 4096


class UnreadableNotebook(ValueError):
    """A submitted notebook that cannot be graded at all; the message says why."""


def read_submission(data: bytes, name: str) -> nbformat.NotebookNode:
    """The submitted notebook ``name`` from its bytes; :class:`UnreadableNotebook` when it is too big or corrupt."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise UnreadableNotebook(f"{name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB; clear its outputs "
                                 "and submit it again")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        cells = notebook.get("cells")
        if not isinstance(cells, list):
            raise ValueError("it has no list of cells")
        if len(cells) > MAX_CELLS:
            raise ValueError(f"it has more than {MAX_CELLS} cells")
    except Exception as error:  # any corruption gets the same advice
        raise UnreadableNotebook(f"{name} is not a readable notebook ({type(error).__name__}: "
                                 f"{str(error)[:200]}). Restore it from the released assignment and copy your "
                                 "solutions back in.") from None
    return notebook


@dataclass(frozen=True)
class Placed:
    """One cell of a submission as graded: the instructor's id it stands for (``None`` for a cell of
    the learner's own) and the learner's cell (``None`` for an instructor cell put back)."""

    grade_id: str | None
    cell: Any


def _text(cell: Any, key: str) -> str:
    value = cell.get(key, "") if isinstance(cell, dict) else ""
    return value if isinstance(value, str) else ""


def _grade_id(cell: Any) -> str | None:
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    info = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = info.get("grade_id") if isinstance(info, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def align(plan: NotebookPlan, notebook: nbformat.NotebookNode) -> list[Placed]:
    """The submission's cells in its order, each matched to the instructor cell whose id it carries
    (the first carrier of the same cell type only), with deleted instructor cells put back."""
    placed, seen = [], set()
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        stands_for = grade_id in plan.cells and _text(cell, "cell_type") == plan.cells[grade_id].cell_type
        if stands_for and grade_id not in seen:
            seen.add(grade_id)
            placed.append(Placed(grade_id, cell))
        else:
            placed.append(Placed(None, cell))
    for index, grade_id in enumerate(plan.order):
        if grade_id in seen or plan.roles[grade_id] not in (LOCKED, TEST):
            continue
        before = [g for g in plan.order[:index] if g in seen]
        position = next((i + 1 for i, p in enumerate(placed) if before and p.grade_id == before[-1]), 0)
        placed.insert(position, Placed(grade_id, None))
        seen.add(grade_id)
    return placed


@dataclass
class Program:
    """What the sandbox runs: code (source text) and checks (task indices) in notebook order,
    the checks the static scan rejected, with the reason, and each code step's cell as the learner finds it
    (:func:`cell_name`)."""

    steps: list[str | int]
    rejected: dict[int, Mismatch]
    cell_names: dict[int, str] = field(default_factory=dict)


def cell_name(placed: Placed, positions: dict[int, int]) -> str:
    """How a learner finds ``placed`` in their notebook: "cell 7", its position counted from 1 over every cell
    (text cells too); an instructor cell the learner deleted and grading put back is named by its nbgrader id."""
    if placed.cell is None:
        return f"cell '{placed.grade_id}' of the assignment (put back where you deleted it)"
    return f"cell {positions[id(placed.cell)]}"


def build_program(plan: NotebookPlan, notebook: nbformat.NotebookNode) -> Program:
    """The steps for a submission, and its checks rejected by the static scan."""
    steps: list[str | int] = []
    rejected: dict[int, Mismatch] = {}
    cell_names: dict[int, str] = {}
    positions = {id(cell): number for number, cell in enumerate(notebook.cells, 1)}
    bindings: dict[str, Binding] = {}  # name -> the learner's statement that last bound it
    learner_source = LearnerSource()
    for placed in align(plan, notebook):
        role = plan.roles.get(placed.grade_id)
        if role == TEST:
            for task in plan.graded[placed.grade_id].tasks:
                problem = _scan(plan, task, bindings)
                if problem:
                    rejected[task] = problem
                elif task not in steps:
                    steps.append(task)
        elif role == LOCKED and plan.cells[placed.grade_id].cell_type == "code":
            cell_names[len(steps)] = cell_name(placed, positions)
            steps.append(python_source(plan.cells[placed.grade_id].source))
            for name in _bound_names(steps[-1]):
                bindings.pop(name, None)
        elif _text(placed.cell, "cell_type") == "code" and role in (None, SOLUTION, MANUAL):
            cell_names[len(steps)] = cell_name(placed, positions)
            steps.append(learner_source(_text(placed.cell, "source")))
            bindings.update(_bound_names(steps[-1]))
    return Program(steps, rejected, cell_names)


@dataclass(frozen=True)
class Binding:
    """A module-level statement of a cell that binds a name: the cell's source and the statement."""

    source: str
    statement: ast.stmt

    def text(self) -> str:
        return ast.get_source_segment(self.source, self.statement) or ""


def _scan(plan: NotebookPlan, task: int, bindings: dict[str, Binding]) -> Mismatch | None:
    target = plan.tasks[task]
    if target.name not in bindings:
        return None
    try:
        named = scan_code(bindings[target.name].text(), target.forbidden)
    except UnscannableCode as error:
        return Mismatch("forbidden", f"the code that defines {target.name} cannot be checked: {error}. "
                                     "Write it more simply.")
    return forbidden_use(named) if named else None


def _bound_names(source: str) -> dict[str, Binding]:
    """Names bound at module level by ``source``, each with the statement that binds it last; none when
    the source does not parse (running it reports why)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a null byte
        return {}
    bound = {}
    for statement in _module_level(tree.body):
        for name in _targets(statement):
            bound[name] = Binding(source, statement)
    return bound


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level, in order: into ``if``/``for``/``try``/``with`` bodies, not into
    definitions (iteratively: an ``elif`` chain nests as deep as it is long)."""
    pending = list(reversed(body))
    while pending:
        statement = pending.pop()
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        nested = [inner for name in ("body", "orelse", "finalbody") for inner in getattr(statement, name, [])]
        nested += [inner for handler in getattr(statement, "handlers", []) for inner in handler.body]
        pending.extend(reversed(nested))


def _targets(statement: ast.stmt) -> list[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in statement.names]
    targets = {ast.Assign: lambda s: s.targets, ast.AnnAssign: lambda s: [s.target],
               ast.AugAssign: lambda s: [s.target]}.get(type(statement), lambda s: [])(statement)
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


def autograded_notebook(plan: NotebookPlan, notebook: nbformat.NotebookNode,
                        verdicts: dict[str, tuple[bool, str]]) -> nbformat.NotebookNode:
    """The notebook nbgrader's feedback and formgrader read: the submission's cells with the instructor's
    cells restored, outputs cleared, and each graded cell's output its verdict ``(passed, message)``."""
    cells = []
    for position, placed in enumerate(align(plan, notebook)):
        if placed.grade_id is None:
            cells.append(_learner_cell(placed.cell, f"learner-{position}"))
            continue
        role, released = plan.roles[placed.grade_id], plan.cells[placed.grade_id]
        if role in (SOLUTION, MANUAL) and placed.cell is not None:
            cell = _learner_cell(placed.cell, released.get("id") or f"learner-{position}")
            cell.metadata["nbgrader"] = copy.deepcopy(released.metadata.nbgrader)
        else:
            cell = copy.deepcopy(released)
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        if placed.grade_id in verdicts:
            cell.outputs = [_verdict_output(*verdicts[placed.grade_id])]
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(plan.release.metadata))


def _learner_cell(cell: Any, cell_id: str) -> nbformat.NotebookNode:
    """A clean copy of a learner's cell: its type and source, no outputs, no nbgrader claims, and the id
    ``cell_id`` (so that the same submission always makes the same autograded notebook)."""
    kind = _text(cell, "cell_type")
    new = {"code": nbformat.v4.new_code_cell, "raw": nbformat.v4.new_raw_cell}.get(kind, nbformat.v4.new_markdown_cell)
    return new(_text(cell, "source"), id=cell_id)


def _verdict_output(passed: bool, message: str) -> nbformat.NotebookNode:
    if passed:
        return nbformat.v4.new_output("stream", name="stdout", text=message + "\n")
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=message, traceback=message.splitlines())
