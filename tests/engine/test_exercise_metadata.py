"""Each exercise's points, difficulty and minutes have one source, its spec: the notebooks and README agree with it."""

import dataclasses
import re
import shutil

import nbformat
import pytest

from autograder import headers
from autograder.notebook import graded_cells
from autograder.registry import EXERCISES, LESSONS, lesson_exercises
from tests.support.notebooks import ROOT, solution_notebook


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_headers_and_points_are_those_the_specs_generate(lesson):
    differences = headers.sync(solution_notebook(lesson))
    assert differences == [], "\n".join(differences + [
        f"run `python -m autograder.headers`, then `nbgrader generate_assignment {lesson} --force`"])


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_exercise_has_one_graded_check_cell_with_its_points_and_each_graded_cell_an_exercise(lesson):
    graded = [(cell.metadata.nbgrader["grade_id"], cell.metadata.nbgrader["points"])
              for cell in graded_cells(nbformat.read(solution_notebook(lesson), as_version=4))]
    assert sorted(graded) == sorted((f"check_{exercise.name}", exercise.points) for exercise in lesson_exercises(lesson))


def test_readme_points_table_sums_the_specs_points():
    rows = re.findall(r"^\| (\d\d-[\w-]+) \| .* \| (\d+) \|$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert {lesson: int(points) for lesson, points in rows} == {
        lesson: sum(exercise.points for exercise in lesson_exercises(lesson)) for lesson in LESSONS}


def test_header_line_shows_stars_out_of_three_minutes_and_points():
    exercise = EXERCISES["count_pairs"]
    assert headers.header_line(dataclasses.replace(exercise, difficulty=1, minutes=5, points=1)) == (
        "*Difficulty ★☆☆ · about 5 minutes · 1 point*")
    assert headers.header_line(dataclasses.replace(exercise, difficulty=3, minutes=40, points=3)) == (
        "*Difficulty ★★★ · about 40 minutes · 3 points*")
    with pytest.raises(ValueError, match="difficulty 4"):
        headers.header_line(dataclasses.replace(exercise, difficulty=4))


@pytest.fixture
def changed_softmax(tmp_path, monkeypatch):
    """A copy of lesson 02's solutions notebook, and the lesson's specs with softmax's values changed."""
    path = tmp_path / "02-attention.ipynb"
    shutil.copy(solution_notebook("02-attention"), path)
    specs = [dataclasses.replace(exercise, points=3, difficulty=3, minutes=1) if exercise.name == "softmax"
             else exercise for exercise in lesson_exercises("02-attention")]
    monkeypatch.setattr(headers, "lesson_exercises", lambda lesson: specs)
    return path


def test_a_changed_spec_is_reported_and_written_into_the_notebook_and_nothing_else(changed_softmax):
    path, before = changed_softmax, changed_softmax.read_text()
    old_header, new_header = "*Difficulty ★★☆ · about 15 minutes · 2 points*", "*Difficulty ★★★ · about 1 minute · 3 points*"
    expected = [f"{path}: softmax: header {old_header} -> {new_header}", f"{path}: softmax: points 2 -> 3"]
    assert headers.main(["--check", str(path)]) == 1
    assert headers.sync(path) == expected and path.read_text() == before
    assert headers.sync(path, write=True) == expected
    assert headers.sync(path) == [] and headers.main(["--check", str(path)]) == 0
    old, new = (nbformat.read(notebook, as_version=4).cells for notebook in (solution_notebook("02-attention"), path))
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert [new[i].metadata.nbgrader["grade_id"] for i in changed] == ["task_softmax", "check_softmax"]
    task, check = changed
    assert new[task].source == old[task].source.replace(old_header, new_header)
    assert new[check].metadata.nbgrader == {**old[check].metadata.nbgrader, "points": 3}


def test_a_missing_check_cell_or_a_graded_cell_without_exercise_is_a_layout_error(changed_softmax):
    nb = nbformat.read(changed_softmax, as_version=4)
    for cell in nb.cells:
        if cell.metadata.nbgrader["grade_id"] == "check_softmax":
            cell.metadata.nbgrader["grade_id"] = "check_bonus"
    nbformat.write(nb, changed_softmax)
    with pytest.raises(headers.NotebookLayoutError) as error:
        headers.sync(changed_softmax, write=True)
    assert "'check_bonus' checks no exercise" in str(error.value)
    assert "softmax: needs one markdown cell task_softmax" in str(error.value)
    assert headers.main([str(changed_softmax)]) == 1
