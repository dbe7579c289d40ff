"""Due dates, extensions and late penalties: parsed, configured, applied by ``tfcourse grade``, shown by export."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrader.plugins import LateSubmissionPlugin
from traitlets.config import Config

from autograder.grading.course import Course
from autograder.grading.deadlines import (
    DeadlineError,
    PerHourPenalty,
    late_policy,
    parse_due_date,
    parse_extension,
)
from tests.support.grading_course import (
    LESSON,
    released_course,
    solved,
    submit,
    tfcourse,
)

DUE = "2030-01-01T12:00"


def test_due_dates_are_read_in_utc_or_with_their_offset():
    assert parse_due_date(DUE) == datetime(2030, 1, 1, 12, 0)
    assert parse_due_date("2030-01-01 13:00+01:00") == datetime(2030, 1, 1, 12, 0)
    for wrong in ("tomorrow", "12/08/2030", "2030-13-01T00:00", ""):
        with pytest.raises(DeadlineError, match="2026-12-08T23:59"):
            parse_due_date(wrong)


def test_extensions_are_read_in_weeks_days_hours_and_minutes():
    assert parse_extension("2d") == timedelta(days=2)
    assert parse_extension("1w2d") == timedelta(days=9)
    assert parse_extension("1.5h") == timedelta(minutes=90)
    assert parse_extension("0") == timedelta(0)
    for wrong in ("2", "d2", "2 days", "-1d", ""):
        with pytest.raises(DeadlineError, match="2d, 36h"):
            parse_extension(wrong)


def test_the_late_policy_is_the_one_nbgrader_config_names():
    assert type(late_policy(Config())) is LateSubmissionPlugin
    config = Config()
    config.AssignLatePenalties.plugin_class = "autograder.grading.deadlines.PerHourPenalty"
    config.PerHourPenalty.points_per_hour = 0.5
    policy = late_policy(config)
    assert isinstance(policy, PerHourPenalty)
    assert [policy.late_submission_penalty("s", 9.0, s) for s in (1, 3600, 3601, 9000)] == [0.5, 0.5, 1.0, 1.5]
    zero = Config()
    zero.LateSubmissionPlugin.penalty_method = "zero"
    assert late_policy(zero).late_submission_penalty("s", 7.0, 60) == 7.0
    for wrong in ("no.such.Plugin", "collections.OrderedDict"):
        broken = Config()
        broken.AssignLatePenalties.plugin_class = wrong
        with pytest.raises(DeadlineError, match="plugin_class"):
            late_policy(broken)


def _submit_at(course: Path, student: str, when: str, cells: set[str]) -> None:
    path = submit(course, student, solved(course, cells))
    (path.parent / "timestamp.txt").write_text(f"{when}.000000 UTC")


def _penalties(course: Path) -> dict[str, float | None]:
    with Gradebook(Course(course).db_url) as gradebook:
        return {s.student_id: s.notebooks[0].late_submission_penalty for s in gradebook.assignment_submissions(LESSON)}


def _grade(course: Path) -> None:
    result = tfcourse("grade", LESSON, "--course", course, "--device", "cpu", "--workers", 2)
    assert result.returncode == 0, result.stderr


def _exported(course: Path) -> dict[str, dict[str, str]]:
    assert tfcourse("export", "--course", course).returncode == 0
    with open(course / "grades.csv", newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


@pytest.mark.slow
def test_grade_applies_the_late_policy_to_on_time_late_extended_and_resubmitted_work(tmp_path_factory):
    course = released_course(tmp_path_factory)
    with open(course / "nbgrader_config.py", "a") as config:
        config.write('c.AssignLatePenalties.plugin_class = "autograder.grading.deadlines.PerHourPenalty"\n'
                     "c.PerHourPenalty.points_per_hour = 0.5\n")
    assert tfcourse("deadline", LESSON, DUE, "--course", course).returncode == 0
    cells = {"softmax", "attention_scores"}  # 3 points of 9
    _submit_at(course, "ontime", "2030-01-01 11:59:00", cells)
    _submit_at(course, "late", "2030-01-01 14:30:00", cells)  # 2.5 h late: 3 started hours
    _submit_at(course, "extended", "2030-01-02 11:00:00", cells)
    extension = tfcourse("deadline", LESSON, "--student", "extended", "--extension", "1d", "--course", course)
    assert extension.returncode == 0, extension.stderr
    _grade(course)
    assert _penalties(course) == {"ontime": None, "late": 1.5, "extended": None}
    rows = _exported(course)
    assert {s: (r[LESSON], r[f"{LESSON} hours late"], r[f"{LESSON} penalty"]) for s, r in rows.items()} == {
        "ontime": ("3", "0", "0"), "late": ("1.5", "2.5", "1.5"), "extended": ("3", "0", "0")}
    assert rows["late"][f"{LESSON} timestamp"] == "2030-01-01T14:30:00Z"

    _submit_at(course, "ontime", "2030-01-01 13:10:00", cells)  # resubmitted late: the last submission counts
    assert tfcourse("deadline", LESSON, "--student", "late", "--extension", "3h", "--course", course).returncode == 0
    _grade(course)  # "late" is not graded again, but its penalty follows the new extension
    assert _penalties(course) == {"ontime": 1.0, "late": None, "extended": None}
    rows = _exported(course)
    assert {s: r[LESSON] for s, r in rows.items()} == {"ontime": "2", "late": "3", "extended": "3"}


def test_an_extension_needs_a_released_assignment_and_a_student_and_an_extension_together(tmp_path):
    from autograder.grading.course import init_course
    from tests.support.notebooks import ROOT

    solutions = tmp_path / "solutions"
    (solutions / LESSON).mkdir(parents=True)
    (solutions / LESSON / f"{LESSON}.ipynb").write_bytes((ROOT / "solutions" / LESSON / f"{LESSON}.ipynb").read_bytes())
    course = init_course(tmp_path / "course", solutions).root
    unreleased = tfcourse("deadline", LESSON, "--student", "ada", "--extension", "2d", "--course", course)
    assert unreleased.returncode == 2 and "tfcourse release" in unreleased.stderr
    alone = tfcourse("deadline", LESSON, "--student", "ada", "--course", course)
    assert alone.returncode == 2 and "go together" in alone.stderr
    wrong = tfcourse("deadline", LESSON, "friday", "--course", course)
    assert wrong.returncode == 2 and "2026-12-08T23:59" in wrong.stderr
    assert tfcourse("deadline", LESSON, "2030-01-01T12:00+02:00", "--course", course).returncode == 0
    with Gradebook(Course(course).db_url) as gradebook:
        assert gradebook.find_assignment(LESSON).duedate == datetime(2030, 1, 1, 10, 0)
