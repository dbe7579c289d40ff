"""Grades for the learning platform: one row per student, read from nbgrader's gradebook.

Each assignment of a student has a status:

* ``not released``: the assignment was never generated into the course's ``release/`` folder;
* ``missing``: released, but nothing of the student's was collected and graded;
* ``submitted``: collected, not graded yet (or every graded cell awaits manual grading);
* ``graded``: its score is ``score - penalty``, the gradebook's score (manual grades included)
  less the late penalty the gradebook holds (set by ``tfcourse grade`` or ``nbgrader autograde``).

``max_score`` is the points of every assignment of the course, released or not (from the
source notebooks' grade cells), so it does not change as lessons are released.

Layouts (``--format``):

* ``csv``: ``student_id, first_name, last_name, email, platform_id``, then per assignment
  ``A``, ``A status``, ``A timestamp`` (UTC, ISO 8601), ``A hours late``, ``A penalty``,
  then ``total`` and ``max_score``;
* ``canvas``: Canvas's gradebook CSV: ``Student, ID, SIS User ID, SIS Login ID, Section``
  and one column per released assignment, with a ``Points Possible`` row;
* ``moodle``: Moodle's grade import CSV: ``First name, Last name, ID number, Email address``
  and one column per released assignment.

In the platform layouts a cell without a score (missing, not graded yet) is left empty.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from autograder.grading.course import Course

NOT_RELEASED, MISSING, SUBMITTED, GRADED = "not released", "missing", "submitted", "graded"


@dataclass(frozen=True)
class Result:
    """A student's result on one assignment: its status, and for a submission its timestamp (naive UTC, as
    nbgrader keeps it), seconds late, late penalty and score after the penalty (``None`` unless graded)."""

    status: str
    score: float | None = None
    penalty: float = 0.0
    timestamp: datetime | None = None
    seconds_late: float = 0.0


@dataclass
class StudentRow:
    id: str
    first_name: str
    last_name: str
    email: str
    platform_id: str
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(r.score for r in self.results.values() if r.score is not None)


@dataclass
class ClassGrades:
    """Every student's result on every assignment; ``max_scores`` by assignment, ``released`` in name order."""

    assignments: list[str]
    released: list[str]
    max_scores: dict[str, float]
    students: list[StudentRow]

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())


def class_grades(course: Course) -> ClassGrades:
    """The gradebook's students (the roster and whoever was graded) and their results."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gradebook:
        assignments = sorted(a.name for a in gradebook.assignments)
        released = [a for a in assignments if course.is_released(a)]
        max_scores = {a: course.assignment_points(a) for a in assignments}
        rows = {s.id: StudentRow(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
                for s in gradebook.students}
        for assignment in assignments:
            submissions = {s.student_id: s for s in gradebook.assignment_submissions(assignment)}
            for student, row in rows.items():
                row.results[assignment] = _result(assignment in released, submissions.get(student))
    return ClassGrades(assignments, released, max_scores, sorted(rows.values(), key=lambda row: row.id))


def _result(released: bool, submission: object | None) -> Result:
    if not released:
        return Result(NOT_RELEASED)
    graded = submission is not None and any(grade.auto_score is not None or grade.manual_score is not None
                                            for notebook in submission.notebooks for grade in notebook.grades)
    if submission is None or (submission.timestamp is None and not graded):
        return Result(MISSING)  # a gradebook entry made for an extension only
    if not graded:
        return Result(SUBMITTED, timestamp=submission.timestamp, seconds_late=submission.total_seconds_late)
    penalty = submission.late_submission_penalty or 0.0
    return Result(GRADED, submission.score - penalty, penalty, submission.timestamp, submission.total_seconds_late)


# --- layouts -------------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    return "" if value is None else f"{round(value, 4):g}"


def csv_rows(grades: ClassGrades) -> list[list[str]]:
    """Every column of every assignment (see the module's docstring)."""
    header = ["student_id", "first_name", "last_name", "email", "platform_id"]
    for a in grades.assignments:
        header += [a, f"{a} status", f"{a} timestamp", f"{a} hours late", f"{a} penalty"]
    rows = [header + ["total", "max_score"]]
    for student in grades.students:
        row = [student.id, student.first_name, student.last_name, student.email, student.platform_id]
        for a in grades.assignments:
            result = student.results[a]
            stamp = result.timestamp.isoformat(timespec="seconds") + "Z" if result.timestamp else ""
            row += [_number(result.score), result.status, stamp,
                    _number(result.seconds_late / 3600) if result.timestamp else "",
                    _number(result.penalty) if result.status == GRADED else ""]
        rows.append(row + [_number(student.total), _number(grades.max_score)])
    return rows


def canvas_rows(grades: ClassGrades) -> list[list[str]]:
    """Canvas's gradebook import: students matched by ``ID`` (the platform id) or ``SIS Login ID`` (the
    student id); a column whose header is no assignment of the Canvas course becomes a new one, with the
    points of the ``Points Possible`` row."""
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *grades.released],
            ["Points Possible", "", "", "", "", *(_number(grades.max_scores[a]) for a in grades.released)]]
    for student in grades.students:
        name = ", ".join(part for part in (student.last_name, student.first_name) if part) or student.id
        rows.append([name, student.platform_id, "", student.id, "",
                     *(_number(student.results[a].score) for a in grades.released)])
    return rows


def moodle_rows(grades: ClassGrades) -> list[list[str]]:
    """Moodle's grade import from a CSV file: users identified by ``ID number`` (the student id) or ``Email
    address``, each assignment's column mapped to a grade item in the import form."""
    rows = [["First name", "Last name", "ID number", "Email address", *grades.released]]
    for student in grades.students:
        rows.append([student.first_name, student.last_name, student.id, student.email,
                     *(_number(student.results[a].score) for a in grades.released)])
    return rows


LAYOUTS: dict[str, Callable[[ClassGrades], list[list[str]]]] = {
    "csv": csv_rows, "canvas": canvas_rows, "moodle": moodle_rows}


def export_grades(course: Course, layout: str, output: Path) -> int:
    """Write the class's grades in ``layout`` to ``output``; the number of students."""
    grades = class_grades(course)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(LAYOUTS[layout](grades))
    return len(grades.students)
