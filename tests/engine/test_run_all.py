"""Run All in a learner's notebook reaches the end: a failing check() prints its report and the next exercise
runs; where nbgrader grades (``NBGRADER_EXECUTION`` set), the same check fails its cell.

Each lesson's released notebook, as a learner first opens it (every exercise a stub), is executed cell by cell
in a real kernel, as JupyterLab's Run All does."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.notebook import graded_cells
from tests.support.notebooks import GRADED_LESSONS, ROOT

KERNEL_TIMEOUT_S = 600


def _run_all(lesson: str, folder, monkeypatch, grading: bool) -> nbformat.NotebookNode:
    """The lesson's released notebook after Run All in a kernel that inherits this environment."""
    copy = folder / lesson
    shutil.copytree(ROOT / "exercises" / lesson, copy)
    notebook = nbformat.read(copy / f"{lesson}.ipynb", as_version=4)
    if grading:
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    NotebookClient(notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(copy)}}).execute()
    return notebook


def _printed(cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output.output_type == "stream")


@pytest.mark.parametrize("lesson", GRADED_LESSONS)
def test_run_all_of_a_fresh_notebook_reaches_the_end_with_a_report_per_exercise(lesson, tmp_path, monkeypatch):
    notebook = _run_all(lesson, tmp_path, monkeypatch, grading=False)
    checks = graded_cells(notebook)
    assert checks and all(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code")
    for cell in checks:
        report = _printed(cell)
        assert "not implemented yet" in report and "0/" in report and "Cases:" in report, report
        assert not any(output.output_type == "error" for output in cell.outputs)


def test_under_nbgrader_a_failing_check_fails_its_cell(tmp_path, monkeypatch):
    with pytest.raises(CellExecutionError, match="not implemented yet"):
        _run_all(GRADED_LESSONS[0], tmp_path, monkeypatch, grading=True)
