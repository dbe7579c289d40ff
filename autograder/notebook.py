"""Running a learner's notebook and scoring its graded cells, as the instructor will.

A graded cell is one that nbgrader marks ``grade: true`` with ``points``; it earns its
points when it runs without an error. The report of a failed cell is the error message
its ``check()`` raised (the learner-facing report), never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder.scores import CellCheck, NotebookScore

CELL_TIMEOUT_S = 120


def graded_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The cells nbgrader grades automatically, in notebook order."""
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "code"]


def _error_message(cell: nbformat.NotebookNode) -> str | None:
    """The error a cell's outputs hold: the check's report for an AssertionError."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name, value = output.get("ename", "Error"), output.get("evalue", "")
            return value if name == "AssertionError" and value else f"{name}: {value}"
    return None


def execute(nb: nbformat.NotebookNode, workdir: Path, timeout: int = CELL_TIMEOUT_S) -> str | None:
    """Run every cell (continuing past errors); a message when the kernel itself failed."""
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellTimeoutError:
        return f"a cell ran longer than {timeout} s and was stopped (an infinite loop?)"
    except DeadKernelError as error:
        return f"the Python kernel died while running the notebook: {error}"
    return None


def score_notebook(path: str | Path, student: str = "", timeout: int = CELL_TIMEOUT_S) -> NotebookScore:
    """Execute the notebook at ``path`` and score its graded cells."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # any unreadable file gets the same fix-it advice
        raise ValueError(f"{path} is not a readable notebook ({error}). Restore it from the course's "
                         "exercises/ folder and copy your solutions back in.") from error
    failure = execute(nb, path.parent, timeout)
    checks = [_cell_check(cell, failure) for cell in graded_cells(nb)]
    return NotebookScore(student, path.stem, sum(c.points for c in checks), sum(c.max_points for c in checks), checks)


def _cell_check(cell: nbformat.NotebookNode, failure: str | None) -> CellCheck:
    info = cell.metadata["nbgrader"]
    max_points = float(info.get("points", 0))
    ran = bool(cell.get("outputs")) or cell.get("execution_count") is not None
    message = _error_message(cell) or (None if ran else failure or "this cell did not run")
    name = info["grade_id"].removeprefix("check_")
    return CellCheck(name, 0.0 if message else max_points, max_points, message is None, message or "passed")


def format_report(score: NotebookScore) -> str:
    """A readable report: one line per graded cell, then the total."""
    lines = [f"{score.assignment}: {score.score:g} / {score.max_score:g} points"]
    for check in score.checks:
        mark = "PASS" if check.passed else "FAIL"
        lines.append(f"  {mark} {check.name} ({check.points:g}/{check.max_points:g})")
        if not check.passed:
            lines += [f"       {line}" for line in check.message.splitlines()]
    return "\n".join(lines)
