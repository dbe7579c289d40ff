"""Every lesson's notebooks under the real nbgrader, and ``tfcourse check``."""

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.notebook import graded_cells
from tests.support.notebooks import GRADED_LESSONS, ROOT, comparable, solution_notebook

pytest.importorskip("nbgrader")


def nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """An nbgrader course holding every lesson, with its assignments generated."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.root = "."\n'
        'c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}\n'
    )
    for lesson in GRADED_LESSONS:
        shutil.copytree(ROOT / "solutions" / lesson, course / "source" / lesson)
        nbgrader(course, "generate_assignment", lesson, "--force")
    return course


@pytest.mark.parametrize("lesson", GRADED_LESSONS)
def test_committed_exercises_match_nbgrader_generate_assignment(course, lesson):
    generated = course / "release" / lesson / f"{lesson}.ipynb"
    committed = ROOT / "exercises" / lesson / f"{lesson}.ipynb"
    assert comparable(committed) == comparable(generated), (
        f"exercises/{lesson} is out of date: run `nbgrader generate_assignment {lesson} --force` in the repository root")


@pytest.mark.parametrize("lesson", GRADED_LESSONS)
def test_notebooks_are_stored_without_outputs_and_have_enough_graded_cells(lesson):
    for path in (solution_notebook(lesson), ROOT / "exercises" / lesson / f"{lesson}.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    assert len(graded_cells(nbformat.read(solution_notebook(lesson), as_version=4))) >= 5


def submit(course, student, lesson, notebook):
    folder = course / "submitted" / student / lesson
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{lesson}.ipynb")


def partially_solved(course, lesson, solved: set[str]):
    """The released notebook with the solution cells of ``solved`` filled in from the source."""
    released = nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    for mine, theirs in zip(released.cells, source.cells):
        if mine.metadata.get("nbgrader", {}).get("grade_id") in solved:
            mine.source = theirs.source
    return released


def gradebook_scores(course, lesson):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {s.student_id: s.score for s in gradebook.assignment_submissions(lesson)}


# Solution cells filled in for a partly solved submission, and the points they earn.
PARTIAL = {
    "02-attention": ({"softmax", "attention_scores"}, 3.0),
    "03-multihead": ({"split_heads", "causal_mask", "padding_mask"}, 3.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("lesson", GRADED_LESSONS)
def test_real_nbgrader_autograde_gives_full_marks_zero_and_partial_credit(course, lesson):
    submit(course, "solved", lesson, nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4))
    submit(course, "untouched", lesson, nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", as_version=4))
    expected = {"solved": sum(c.metadata.nbgrader["points"] for c in graded_cells(nbformat.read(
        solution_notebook(lesson), 4))), "untouched": 0.0}
    if lesson in PARTIAL:
        solved, expected["partial"] = PARTIAL[lesson]
        submit(course, "partial", lesson, partially_solved(course, lesson, solved))
    for student in expected:
        nbgrader(course, "db", "student", "add", student)
    nbgrader(course, "autograde", lesson, "--force")
    assert gradebook_scores(course, lesson) == expected


@pytest.mark.slow
def test_tfcourse_check_json_matches_the_contract(course, tmp_path):
    lesson = "02-attention"
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(partially_solved(course, lesson, {"softmax"}), path)
    result = subprocess.run([sys.executable, "-m", "tfcourse.cli", "check", str(path), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"student", "assignment", "score", "max_score", "checks"}
    assert report["assignment"] == lesson and report["score"] == 2.0 and report["max_score"] == 9.0
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks["softmax"]) == {"name", "points", "max_points", "passed", "message"}
    assert checks["softmax"]["passed"] and not checks["attention_scores"]["passed"]
    assert "not implemented yet" in checks["attention_scores"]["message"]
    assert "Traceback" not in result.stdout


def test_tfcourse_check_explains_a_corrupt_notebook(tmp_path):
    broken = tmp_path / "02-attention.ipynb"
    broken.write_text('{"cells": [ this is not json')
    result = subprocess.run([sys.executable, "-m", "tfcourse.cli", "check", str(broken)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "not a readable notebook" in result.stderr and "exercises/" in result.stderr


@pytest.mark.slow
def test_tfcourse_progress_grades_each_lesson_and_names_what_is_missing(tmp_path):
    lesson = "02-attention"
    (tmp_path / lesson).mkdir()
    shutil.copy(solution_notebook(lesson), tmp_path / lesson / f"{lesson}.ipynb")
    result = subprocess.run([sys.executable, "-m", "tfcourse.cli", "progress", "--dir", str(tmp_path), "--device", "cpu"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "9 / 9" in lines[lesson] and "5/5 exercises pass" in lines[lesson]
    assert "no notebook at" in lines["01-embeddings"] and "9 / 9" in lines["total"]
