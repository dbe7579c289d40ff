"""The learning platform: the roster import, and export's statuses, columns and Canvas and Moodle layouts."""

from __future__ import annotations

import csv
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from autograder.grading.course import Course, run_nbgrader
from tests.support.grading_course import LESSON, released_course, tfcourse
from tests.support.notebooks import ROOT

LATER = "03-multihead"  # in the course, not released
ROSTER = """id,first_name,last_name,email,platform_id
ada,Ada,Lovelace,ada@example.org,1001
bob,Bob,,bob@example.org,1002
"""
SUBMITTED_AT = datetime(2030, 1, 1, 13, 30)
PENALTY = 0.5  # as nbgrader autograde's late policy would have set it


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course with ``LESSON`` released and ``LATER`` not; ada's late submission graded (the first grade
    cell right), bob's missing, and zed (graded, not on the roster) with every cell wrong."""
    root = released_course(tmp_path_factory)
    shutil.copytree(ROOT / "solutions" / LATER, root / "source" / LATER)
    roster = root.parent / "roster.csv"
    roster.write_text(ROSTER)
    imported = tfcourse("roster", roster, "--course", root)
    assert imported.returncode == 0 and "2 students added" in imported.stdout, imported.stderr
    with Gradebook(Course(root).db_url) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own, as tfcourse grade silences them
        gradebook.update_or_create_assignment(LATER)
        gradebook.update_or_create_assignment(LESSON, duedate="2030-01-01 12:00:00")
        for student in ("ada", "zed"):
            gradebook.update_or_create_student(student)
            submission = gradebook.update_or_create_submission(LESSON, student, timestamp=SUBMITTED_AT)
            grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
            for number, grade in enumerate(grades):
                grade.auto_score = grade.max_score if (student, number) == ("ada", 0) else 0.0
            submission.notebooks[0].late_submission_penalty = PENALTY if student == "ada" else None
        gradebook.db.commit()
    return root


def _first_cell_points(course: Path) -> float:
    with Gradebook(Course(course).db_url) as gradebook:
        return gradebook.find_assignment(LESSON).notebooks[0].grade_cells[0].max_score


def test_the_roster_fills_nbgrader_s_student_table(course):
    with Gradebook(Course(course).db_url) as gradebook:
        ada = gradebook.find_student("ada")
        assert (ada.first_name, ada.last_name, ada.email, ada.lms_user_id) == ("Ada", "Lovelace", "ada@example.org",
                                                                               "1001")


def test_a_bad_roster_is_refused_whole_with_every_bad_row_named(course, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,first_name,email\nnew1,New,new@example.org\nbad id,X,x@example.org\nnew2,Y,no-at-sign\n"
                   "new1,Z,z@example.org\nnew3,\"A, B\"\nnew4,W,w@example.org,extra\n")
    result = tfcourse("roster", bad, "--course", course)
    assert result.returncode == 2
    for line in ("line 3", "line 4", "line 5: the id 'new1' is also on line 2", "line 6", "line 7"):
        assert line in result.stderr, result.stderr
    assert "nothing was imported" in result.stderr
    with Gradebook(Course(course).db_url) as gradebook:
        assert not {"new1", "new2", "new4"} & {s.id for s in gradebook.students}
    header = tmp_path / "header.csv"
    header.write_text("name,email\nada,a@b.c\n")
    wrong_header = tfcourse("roster", header, "--course", course)
    assert wrong_header.returncode == 2 and "id required" in wrong_header.stderr


def test_an_updated_roster_keeps_what_its_empty_cells_do_not_give(tmp_path_factory):
    course = released_course(tmp_path_factory)
    first, second = course.parent / "first.csv", course.parent / "second.csv"
    first.write_text(ROSTER)
    second.write_text("id,email,first_name\nada,,Augusta\n")
    assert tfcourse("roster", first, "--course", course).returncode == 0
    updated = tfcourse("roster", second, "--course", course)
    assert updated.returncode == 0 and "0 students added, 1 updated" in updated.stdout
    with Gradebook(Course(course).db_url) as gradebook:
        ada = gradebook.find_student("ada")
        assert (ada.first_name, ada.email, ada.lms_user_id) == ("Augusta", "ada@example.org", "1001")
        assert len(gradebook.students) == 2


def _export(course: Path, layout: str) -> list[list[str]]:
    output = course.parent / f"{layout}.csv"
    result = tfcourse("export", "--course", course, "--format", layout, "--output", output)
    assert result.returncode == 0, result.stderr
    return _read(output)


def test_the_csv_layout_tells_not_released_missing_and_scores_with_times_and_penalties(course):
    header, *rows = _export(course, "csv")
    columns = [LESSON, f"{LESSON} status", f"{LESSON} timestamp", f"{LESSON} hours late", f"{LESSON} penalty"]
    assert header[:5] == ["student_id", "first_name", "last_name", "email", "platform_id"]
    assert header[5:10] == columns and header[10:15] == [c.replace(LESSON, LATER) for c in columns]
    assert header[15:] == ["total", "max_score"]
    by_id = {row[0]: dict(zip(header, row)) for row in rows}
    assert list(by_id) == ["ada", "bob", "zed"]
    score = _first_cell_points(course) - PENALTY
    assert [by_id["ada"][c] for c in columns] == [f"{score:g}", "graded", "2030-01-01T13:30:00Z", "1.5", "0.5"]
    assert [by_id["bob"][c] for c in columns] == ["", "missing", "", "", ""]
    assert [by_id["zed"][c] for c in columns] == ["0", "graded", "2030-01-01T13:30:00Z", "1.5", "0"]
    assert {by_id[s][f"{LATER} status"] for s in by_id} == {"not released"}
    assert by_id["ada"]["total"] == f"{score:g}" and by_id["bob"]["email"] == "bob@example.org"


@pytest.mark.slow
def test_max_score_is_every_assignment_s_points_before_and_after_release(course, tmp_path):
    course_copy = tmp_path / "course"
    shutil.copytree(course, course_copy, symlinks=True)
    config = course_copy / "nbgrader_config.py"
    config.write_text(config.read_text().replace(str(course), str(course_copy)))
    before = {row[-1] for row in _export(course_copy, "csv")[1:]}
    assert run_nbgrader(Course(course_copy), "generate_assignment", LATER, "--force") == 0
    with Gradebook(Course(course_copy).db_url) as gradebook:
        expected = sum(a.max_score for a in gradebook.assignments)  # both generated: the gradebook knows it all
    header, *rows = _export(course_copy, "csv")
    assert before == {row[-1] for row in rows} == {f"{expected:g}"}
    assert {dict(zip(header, row))[f"{LATER} status"] for row in rows} == {"missing"}


def test_the_canvas_layout_is_canvas_s_gradebook_import(course):
    header, points, *rows = _export(course, "canvas")
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", LESSON]
    with Gradebook(Course(course).db_url) as gradebook:
        maximum = gradebook.find_assignment(LESSON).max_score
    assert points == ["Points Possible", "", "", "", "", f"{maximum:g}"]
    score = _first_cell_points(course) - PENALTY
    assert rows == [["Lovelace, Ada", "1001", "", "ada", "", f"{score:g}"],
                    ["Bob", "1002", "", "bob", "", ""],
                    ["zed", "", "", "zed", "", "0"]]


def test_the_moodle_layout_is_moodle_s_grade_import(course):
    header, *rows = _export(course, "moodle")
    assert header == ["First name", "Last name", "ID number", "Email address", LESSON]
    score = _first_cell_points(course) - PENALTY
    assert rows == [["Ada", "Lovelace", "ada", "ada@example.org", f"{score:g}"],
                    ["Bob", "", "bob", "bob@example.org", ""],
                    ["", "", "zed", "", "0"]]
