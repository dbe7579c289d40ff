"""The summary after a grading run: one row per student, sorted, with the gradebook's score and the
reasons for every loss that is not a wrong answer.

The score is the gradebook's (nbgrader's ``SubmittedAssignment.score``: a grade given by hand in
formgrader counts instead of the automatic one), the late penalty the gradebook holds (nbgrader's
``late_submission_penalty``, 0 when none was set), and the reasons come from the run's grades
(:mod:`autograder.grading.losses`), for submissions taken from the journal as for those graded now.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

if TYPE_CHECKING:
    from autograder.grading.course import Course
    from autograder.grading.pipeline import ClassRun, SubmissionGrades

GRADED, UNCHANGED, NOT_GRADED = "graded", "unchanged", "not graded"


@dataclass
class StudentSummary:
    """One student's row: ``score`` out of ``max_score`` as the gradebook holds it (``None`` when it holds no
    grade), the ``late_penalty`` to subtract from it, how this run dealt with the submission, and why points
    were lost other than by wrong answers."""

    student: str
    score: float | None
    max_score: float
    late_penalty: float
    status: str
    reasons: list[str] = field(default_factory=list)


def summarise(course: Course, assignment: str, run: ClassRun) -> list[StudentSummary]:
    """The run's students, sorted by id."""
    rows = []
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gradebook:
        warnings.simplefilter("ignore", SAWarning)
        for grades in run.graded:
            status = UNCHANGED if grades.reused else GRADED
            rows.append(_row(gradebook, assignment, grades.student, status, submission_reasons(grades)))
        for student, reason in run.failed.items():
            rows.append(_row(gradebook, assignment, student, NOT_GRADED, [reason]))
    return sorted(rows, key=lambda row: row.student)


def submission_reasons(grades: SubmissionGrades) -> list[str]:
    """Each distinct loss of the submission, with the checks it cost unless it cost them all."""
    cells: dict[str, list[str]] = {}
    graded = [check.name for notebook in grades.notebooks for check in notebook.score.checks]
    for notebook in grades.notebooks:
        for grade_id, reason in notebook.losses.items():
            cells.setdefault(reason, []).append(grade_id.removeprefix("check_"))
    return [reason if len(names) == len(graded) else f"{reason} ({', '.join(names)})"
            for reason, names in cells.items()]


def _row(gradebook: Gradebook, assignment: str, student: str, status: str, reasons: list[str]) -> StudentSummary:
    maximum = gradebook.find_assignment(assignment).max_score
    try:
        submission = gradebook.find_submission(assignment, student)
    except MissingEntry:
        return StudentSummary(student, None, maximum, 0.0, status, reasons)
    return StudentSummary(student, submission.score, maximum, submission.late_submission_penalty or 0.0, status,
                          reasons)


def table(rows: list[StudentSummary]) -> str:
    """The rows as a fixed-width table for a terminal; reasons on the lines below their student."""
    width = max([len("student"), *(len(row.student) for row in rows)])
    lines = [f"{'student':<{width}}  {'score':>13}  {'late penalty':>12}  status"]
    for row in rows:
        score = "-" if row.score is None else f"{row.score:g}"
        lines.append(f"{row.student:<{width}}  {score:>6} / {row.max_score:<4g}  {row.late_penalty:>12g}  {row.status}")
        lines += [f"{'':<{width}}    lost: {reason}" for reason in row.reasons]
    return "\n".join(lines)


def to_json(assignment: str, rows: list[StudentSummary]) -> str:
    """The rows as one JSON document: ``{"assignment", "students": [{"student", "score", "max_score",
    "late_penalty", "status", "reasons"}]}``."""
    return json.dumps({"assignment": assignment, "students": [asdict(row) for row in rows]}, indent=1)
