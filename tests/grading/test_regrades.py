"""Regrades and the summary after a run: ``--student``, ``--exercise``, ``--force`` keeping the instructor's grades,
an interrupted ``--force`` resuming, and the sorted table (and its JSON) with the gradebook's scores and the
reasons for every loss that is not a wrong answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.grading.course import Course
from autograder.grading.deadlines import parse_due_date, set_due_date
from autograder.grading.gradebook import Journal
from autograder.grading.lessons import released_notebook
from autograder.grading.regrade import Regrade
from tests.support.grading_course import (
    LESSON,
    gradebook_scores,
    released_course,
    solution_ids,
    solved,
    submit,
    tfcourse,
)

JOURNAL = f".tfcourse/{LESSON}.journal.jsonl"


def grade(course, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """``tfcourse grade`` with ``args``; its summary JSON by student."""
    summary = course.parent / "summary.json"
    result = tfcourse("grade", LESSON, "--course", course, "--workers", 2, "--summary-json", summary, *args)
    rows = json.loads(summary.read_text())["students"] if summary.exists() else []
    return result, {row["student"]: row for row in rows}


def journal_lines(course) -> list[dict]:
    return [json.loads(line) for line in (course / JOURNAL).read_text().splitlines()]


def entries_of(course, student: str) -> int:
    return sum(line.get("student") == student for line in journal_lines(course))


# --- the journal's record of a regrade --------------------------------------------------------------

def test_a_regrade_resumes_only_when_the_same_one_was_stopped(tmp_path):
    journal, force = Journal(tmp_path / "journal.jsonl"), Regrade(force=True).key()
    assert journal.regrade_started(force) == set()
    journal._write(json.dumps({"student": "ada"}))
    assert journal.regrade_started(force) == {"ada"}  # stopped, run again: ada is done
    assert journal.regrade_started(Regrade(students=("bo",)).key()) == set()  # another regrade starts afresh
    assert journal.regrade_started(force) == set()  # ... and the stopped --force is not resumed after it
    journal._write(json.dumps({"student": "cy"}))
    journal.regrade_finished(force)
    assert journal.regrade_started(force) == set()  # finished: the same command regrades everyone again
    assert journal.entries() == {}  # markers and foreign lines are no entries


# --- manual grades, --student, --exercise ------------------------------------------------------------

@pytest.mark.slow
def test_force_keeps_manual_grades_and_the_summary_shows_the_gradebooks_score(tmp_path_factory):
    course = released_course(tmp_path_factory)
    submit(course, "partial", solved(course, {"softmax", "attention_scores"}))
    submit(course, "full", solved(course, solution_ids(course)))
    first, rows = grade(course)
    assert first.returncode == 0, first.stderr
    assert rows["partial"]["score"] == 3.0 and rows["partial"]["reasons"] == []
    with Gradebook(Course(course).db_url) as gradebook:  # the instructor gives points by hand in formgrader
        cell = gradebook.find_grade("check_scaled_dot_product_attention", LESSON, LESSON, "partial")
        cell.manual_score, cell.needs_manual_grade = 2.0, False
        gradebook.find_comment("scaled_dot_product_attention", LESSON, LESSON, "partial").manual_comment = "close"
        gradebook.db.commit()
    forced, rows = grade(course, "--force")
    assert forced.returncode == 0, forced.stderr
    with Gradebook(Course(course).db_url) as gradebook:
        cell = gradebook.find_grade("check_scaled_dot_product_attention", LESSON, LESSON, "partial")
        assert (cell.manual_score, cell.needs_manual_grade) == (2.0, False)
        comment = gradebook.find_comment("scaled_dot_product_attention", LESSON, LESSON, "partial")
        assert comment.manual_comment == "close"
    assert gradebook_scores(course)["partial"] == 5.0
    assert {s: (r["score"], r["status"]) for s, r in rows.items()} == {"full": (9.0, "graded"),
                                                                     "partial": (5.0, "graded")}
    table = forced.stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == ["full", "partial"]  # sorted, one row each
    assert table[2].split()[1:4] == ["5", "/", "9"]


@pytest.mark.slow
def test_student_and_exercise_regrade_only_what_they_name(tmp_path_factory):
    course = released_course(tmp_path_factory)
    for student in ("ada", "bo"):
        submit(course, student, solved(course, solution_ids(course)))
    assert grade(course)[0].returncode == 0
    lines = journal_lines(course)  # an earlier grader failed ada on softmax and attention_scores, say
    for line in lines:
        for check in line["notebooks"][0]["score"]["checks"]:
            if line["student"] == "ada" and check["name"] in ("softmax", "attention_scores"):
                check["passed"], check["points"] = False, 0.0
                line["notebooks"][0]["grades"][f"check_{check['name']}"] = 0.0
    (course / JOURNAL).write_text("".join(json.dumps(line) + "\n" for line in lines))

    unknown, _ = grade(course, "--student", "nobody-here")
    assert unknown.returncode == 1 and "no submission" in unknown.stderr
    regraded, rows = grade(course, "--student", "ada", "--exercise", "softmax")
    assert regraded.returncode == 0, regraded.stderr
    assert list(rows) == ["ada"] and entries_of(course, "bo") == 1 and entries_of(course, "ada") == 2
    ada = [line for line in journal_lines(course) if line.get("student") == "ada"][-1]
    checks = {c["name"]: c["passed"] for c in ada["notebooks"][0]["score"]["checks"]}
    assert checks["softmax"] and not checks["attention_scores"] and checks["numpy_attention"]
    assert rows["ada"]["score"] == 9.0 - 1.0  # attention_scores (1 point) kept its recorded 0
    assert gradebook_scores(course) == {"ada": 8.0, "bo": 9.0}
    wrong, _ = grade(course, "--exercise", "no_such_exercise")
    assert wrong.returncode == 2 and "softmax" in wrong.stderr


# --- an interrupted --force resumes --------------------------------------------------------------------

SLOW_CELL = "import time\ntime.sleep(3)"


@pytest.mark.slow
def test_an_interrupted_force_run_resumes_where_it_stopped(tmp_path_factory):
    course = released_course(tmp_path_factory)
    students = [f"student-{number}" for number in range(4)]
    for student in students:
        notebook = solved(course, {"softmax"})
        notebook.cells.insert(2, nbformat.v4.new_code_cell(SLOW_CELL))
        submit(course, student, notebook)
    assert grade(course)[0].returncode == 0
    first = gradebook_scores(course)
    with open(course.parent / "force.log", "w") as log:
        forced = subprocess.Popen([sys.executable, "-m", "tfcourse.cli", "grade", LESSON, "--course", course,
                                   "--workers", "1", "--force"], stdout=log, stderr=log, start_new_session=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 600
        while sum(map(entries_of, [course] * 4, students)) < 5:  # the first regraded submission is committed
            assert forced.poll() is None and time.monotonic() < deadline, (course.parent / "force.log").read_text()
            time.sleep(0.2)
        forced.send_signal(signal.SIGINT)
        assert forced.wait(timeout=120) == 130, (course.parent / "force.log").read_text()
    done = {student for student in students if entries_of(course, student) == 2}
    assert 1 <= len(done) < len(students)
    again, rows = grade(course, "--force")
    assert again.returncode == 0, again.stderr
    assert all(entries_of(course, student) == 2 for student in students)  # each regraded exactly once
    assert {s for s, row in rows.items() if row["status"] == "unchanged"} == done
    assert gradebook_scores(course) == first and len(set(first.values())) == 1 and 0 < first["student-0"] < 9


# --- reasons ------------------------------------------------------------------------------------------

def cell_of(notebook: nbformat.NotebookNode, grade_id: str) -> int:
    """The cell's number as the learner sees it: its position, from 1, over every cell."""
    return next(number for number, cell in enumerate(notebook.cells, 1)
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.slow
def test_the_summary_names_every_loss_that_is_not_a_wrong_answer(tmp_path_factory):
    course = released_course(tmp_path_factory)
    submit(course, "wrong-lesson", released_notebook("03-multihead").read_bytes())
    submit(course, "corrupt", b'{"cells": [')
    missing = solved(course, solution_ids(course))
    missing.cells = [c for c in missing.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "softmax"]
    submit(course, "missing", missing)
    looping = solved(course, {"softmax"})
    looping.cells[cell_of(looping, "attention_scores") - 1].source = "def attention_scores(q, k):\n    while True:\n" \
        "        pass"
    submit(course, "looping", looping)
    raising = solved(course, solution_ids(course))
    raising.cells.insert(0, nbformat.v4.new_markdown_cell("my notes"))
    next(c for c in raising.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax").source = \
        "def softmax(x, dim=-1):\n    return undefined_name"
    submit(course, "raising", raising)
    with open(course / "nbgrader_config.py", "a") as config:  # a point off per started hour late
        config.write('\nc.AssignLatePenalties.plugin_class = "autograder.grading.deadlines.PerHourPenalty"\n')
    set_due_date(Course(course).db_url, Course(course).course_id, LESSON, parse_due_date("2030-01-01T11:00"))
    result, rows = grade(course, "--timeout", "12", "--json")
    assert result.returncode == 0, result.stderr
    assert list(rows) == sorted(rows)
    reasons = {student: " | ".join(row["reasons"]) for student, row in rows.items()}
    assert reasons["wrong-lesson"].startswith("wrong lesson: this is lesson 03-multihead's notebook, not "
                                              f"{LESSON}'s")
    assert reasons["corrupt"].startswith("corrupt notebook: ")
    assert reasons["missing"].startswith("missing function: `softmax` is not defined (softmax")
    assert reasons["looping"].startswith("timeout: `attention_scores`: your code ran longer than 6 s")
    assert rows["looping"]["score"] < 9.0
    assert reasons["raising"] == "" and rows["raising"]["score"] < 9.0  # an error is a wrong answer
    assert {s: r["late_penalty"] for s, r in rows.items()} == {s: min(r["score"], 1.0) for s, r in rows.items()}
    report = next(json.loads(line) for line in result.stdout.splitlines() if '"raising"' in line)
    softmax = next(check for check in report["checks"] if check["name"] == "softmax")
    assert f"cell {cell_of(raising, 'softmax')} " in softmax["message"], softmax["message"]
