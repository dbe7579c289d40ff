"""Where grades go: nbgrader's gradebook, and the journal that makes a grading run resumable.

Each graded submission is committed in this order: its autograded notebooks (written to a
temporary file, then renamed), its grades in nbgrader's gradebook (one transaction), and
one line in the journal (appended and flushed to disk) holding everything the run wrote: the
timestamp, every cell's score and comment, and the digest of every autograded file. A run
that is killed at any point loses at most the submission in flight: on the next run, a
journal line whose digest still matches the submission is taken as done (its grades are
written again if the gradebook disagrees with the line, its autograded folder if a file
differs), and anything else is graded again. Every write sets values, never
adds to them, so doing one twice counts nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbgrader.api import (
    BaseCell,
    Comment,
    Grade,
    Gradebook,
    MissingEntry,
    Notebook,
    Student,
    SubmittedAssignment,
    SubmittedNotebook,
)
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning

from autograder.grading.deadlines import apply_late_penalties, penalties_agree
from autograder.scores import CellCheck, NotebookScore


@dataclass
class NotebookGrades:
    """One notebook's results: the JSON report, the gradebook's values by nbgrader cell id
    (``auto_score`` of grade cells, ``None`` leaving a cell to manual grading; ``auto_comment``), and the
    named mistakes of each failed check by the check's name (:mod:`autograder.grading.mistakes`; absent
    from journal lines written before they were recorded)."""

    name: str
    score: NotebookScore
    grades: dict[str, float | None] = field(default_factory=dict)
    comments: dict[str, str | None] = field(default_factory=dict)
    mistakes: dict[str, list[str]] = field(default_factory=dict)
    losses: dict[str, str] = field(default_factory=dict)  # grade id -> a loss not a wrong answer's (losses.py)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "score": asdict(self.score), "grades": self.grades, "comments": self.comments,
                "mistakes": self.mistakes, "losses": self.losses}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NotebookGrades":
        score = dict(data["score"])
        checks = [CellCheck(**check) for check in score.pop("checks")]
        return cls(data["name"], NotebookScore(**score, checks=checks), data["grades"], data["comments"],
                   data.get("mistakes", {}), data.get("losses", {}))


@dataclass
class JournalEntry:
    """One graded submission as a run committed it: the digest it was graded at, the timestamp and
    grades it wrote into the gradebook, and the digest of every file it wrote into its autograded folder."""

    student: str
    digest: str
    timestamp: str | None
    notebooks: list[NotebookGrades]
    files: dict[str, str]

    def to_json(self) -> str:
        return json.dumps({"student": self.student, "digest": self.digest, "timestamp": self.timestamp,
                           "notebooks": [n.to_json() for n in self.notebooks], "files": self.files})

    @classmethod
    def from_json(cls, line: str) -> "JournalEntry":
        """The entry on ``line``; ``ValueError`` (or ``KeyError``/``TypeError``) for a line it cannot be."""
        data = json.loads(line)
        files = data["files"]
        if not (isinstance(data["student"], str) and isinstance(data["digest"], str) and isinstance(files, dict)):
            raise ValueError("not a journal entry")
        return cls(data["student"], data["digest"], data["timestamp"],
                   [NotebookGrades.from_json(n) for n in data["notebooks"]], files)


def file_digests(files: dict[str, bytes | None]) -> dict[str, str]:
    """The SHA-256 of each file's bytes (``"-"`` for a file that is missing)."""
    return {name: hashlib.sha256(data).hexdigest() if data is not None else "-" for name, data in files.items()}


class Journal:
    """An append-only file of graded submissions: one JSON line each, the last line per student wins; and the
    start and end of each regrade (:mod:`autograder.grading.regrade`)."""

    def __init__(self, path: Path):
        self.path = path

    def entries(self) -> dict[str, JournalEntry]:
        """The last complete entry per student (a line cut short by a crash, or written by an older
        version, is ignored: that submission is graded again)."""
        found: dict[str, JournalEntry] = {}
        if not self.path.exists():
            return found
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = JournalEntry.from_json(line)
            except (ValueError, KeyError, TypeError):
                continue
            found[entry.student] = entry
        return found

    def append(self, entry: JournalEntry) -> None:
        self._write(entry.to_json())

    def regrade_started(self, key: str) -> set[str]:
        """The students graded since the last regrade ``key`` started, when that regrade (the same command) was
        stopped before it finished: it resumes, and grades only the others. Otherwise a new regrade starts: its
        start is recorded and no one counts as done."""
        started, done = None, set()
        for data in self._records():
            if "regrade" in data:
                started, done = (data["regrade"], set()) if data.get("state") == "started" else (None, set())
            elif started is not None and isinstance(data.get("student"), str):
                done.add(data["student"])
        if started == key:
            return done
        self._write(json.dumps({"regrade": key, "state": "started"}))
        return set()

    def regrade_finished(self, key: str) -> None:
        """Record that the regrade ``key`` graded everything it chose: running it again starts it afresh."""
        self._write(json.dumps({"regrade": key, "state": "finished"}))

    def _records(self) -> list[dict[str, Any]]:
        """Every complete line of the journal as a JSON object."""
        records = []
        lines = self.path.read_text(errors="replace").splitlines() if self.path.exists() else []
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                records.append(data)
        return records

    def _write(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as journal:
            journal.write(line + "\n")
            journal.flush()
            os.fsync(journal.fileno())


class GradebookWriter:
    """Writes a submission's grades into nbgrader's gradebook, as ``nbgrader autograde`` does, with the late
    penalties of ``late_policy`` (:mod:`autograder.grading.deadlines`; default: nbgrader's, none)."""

    def __init__(self, db_url: str, course_id: str, late_policy: LateSubmissionPlugin | None = None):
        self._gradebook = Gradebook(db_url, course_id)
        self._late_policy = late_policy or LateSubmissionPlugin()
        self._quiet = warnings.catch_warnings()

    def __enter__(self) -> "GradebookWriter":
        self._quiet.__enter__()
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session warnings, as under nbgrader autograde
        return self

    def __exit__(self, *exc: object) -> None:
        self._gradebook.close()
        self._quiet.__exit__(*exc)

    def check_assignment(self, assignment: str) -> list[str]:
        """The assignment's notebook names; ``LookupError`` when it was never generated."""
        try:
            return [notebook.name for notebook in self._gradebook.find_assignment(assignment).notebooks]
        except MissingEntry:
            raise LookupError(f"the gradebook has no assignment {assignment!r}: run `tfcourse release {assignment}` "
                              "first") from None

    def record(self, assignment: str, student: str, timestamp: str | None, notebooks: list[NotebookGrades]) -> None:
        """Set the submission's automatic grades, comments and late penalties, in one transaction.

        The rows are those ``nbgrader autograde`` writes; they are found with one query per kind of row
        rather than one per cell (nbgrader's ``find_grade``), which made writing the gradebook most of the
        time of grading a class."""
        gradebook = self._gradebook
        try:
            submission = self._submission(assignment, student, timestamp)
            grades, comments = self._rows(Grade, submission), self._rows(Comment, submission)
            for notebook in notebooks:
                for grade_id, score in notebook.grades.items():
                    grade = grades[notebook.name, grade_id]
                    grade.auto_score = score
                    grade.needs_manual_grade = _needs_manual_grade(score, grade)
                for grade_id, comment in notebook.comments.items():
                    comments[notebook.name, grade_id].auto_comment = comment
            apply_late_penalties(gradebook, assignment, student, self._late_policy)
            gradebook.db.commit()
        except BaseException:  # Ctrl-C included: a submission's grades are committed whole or not at all
            gradebook.db.rollback()
            raise

    def _submission(self, assignment: str, student: str, timestamp: str | None) -> SubmittedAssignment:
        """The student's submission, with ``timestamp``; the student and the submission are added if new, with
        every row nbgrader's ``Gradebook.add_submission`` makes (a grade per graded cell, a comment per solution
        cell, both per task cell), but not yet committed."""
        db = self._gradebook.db
        known = db.get(Student, student)
        if known is None:
            known = Student(id=student)
            db.add(known)
        try:
            submission = self._gradebook.find_submission(assignment, student)
        except MissingEntry:
            submission = SubmittedAssignment(assignment=self._gradebook.find_assignment(assignment), student=known)
            for notebook in submission.assignment.notebooks:
                submitted = SubmittedNotebook(notebook=notebook, assignment=submission)
                for cell in (*notebook.grade_cells, *notebook.task_cells):
                    Grade(cell_id=cell.id, notebook=submitted)
                for cell in (*notebook.solution_cells, *notebook.task_cells):
                    Comment(cell_id=cell.id, notebook=submitted)
            db.add(submission)
        if timestamp:
            submission.timestamp = parse_utc(timestamp)
        db.flush()  # the new rows get their ids
        return submission

    def _rows(self, model: type[Grade] | type[Comment], submission: SubmittedAssignment) -> dict[tuple[str, str], Any]:
        """The submission's grades (or comments) by ``(notebook name, cell name)``, in one query."""
        query = (self._gradebook.db.query(model, Notebook.name, BaseCell.name)
                 .join(SubmittedNotebook, SubmittedNotebook.id == model.notebook_id)
                 .join(Notebook, Notebook.id == SubmittedNotebook.notebook_id)
                 .join(BaseCell, BaseCell.id == model.cell_id)
                 .filter(SubmittedNotebook.assignment_id == submission.id))
        return {(notebook, cell): row for row, notebook, cell in query}

    def agrees(self, assignment: str, student: str, timestamp: str | None, notebooks: list[NotebookGrades]) -> bool:
        """Whether the gradebook holds exactly what :meth:`record` wrote for the submission: its timestamp,
        every cell's automatic score, manual-grading flag and automatic comment, and the late penalties the
        policy gives now."""
        gradebook = self._gradebook
        try:
            submission = gradebook.find_submission(assignment, student)
            if timestamp and submission.timestamp != parse_utc(timestamp):
                return False
            for notebook in notebooks:
                for grade_id, score in notebook.grades.items():
                    grade = gradebook.find_grade(grade_id, notebook.name, assignment, student)
                    if (grade.auto_score, grade.needs_manual_grade) != (score, _needs_manual_grade(score, grade)):
                        return False
                for grade_id, comment in notebook.comments.items():
                    if gradebook.find_comment(grade_id, notebook.name, assignment, student).auto_comment != comment:
                        return False
            return penalties_agree(gradebook, assignment, student, self._late_policy)
        except MissingEntry:
            return False
        return True


def _needs_manual_grade(score: float | None, grade: Any) -> bool:
    """What :meth:`GradebookWriter.record` sets, given the cell's new automatic ``score`` and its ``grade`` as the
    gradebook holds it: a cell without an automatic score is left to manual grading until the instructor grades
    it by hand; a cell graded by hand keeps its flag (a regrade does not ask for it again, and never touches
    ``manual_score`` or ``manual_comment``), unless the regrade changed the automatic score it was graded over."""
    if grade.manual_score is None:
        return score is None
    return bool(grade.needs_manual_grade) or grade.auto_score != score
