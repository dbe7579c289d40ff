"""The class roster: a CSV of students read into nbgrader's student table.

The CSV has a header row naming its columns; ``id`` is required, the others are optional:

    id,first_name,last_name,email,platform_id
    ada,Ada,Lovelace,ada@example.org,1001

``id`` is the student's nbgrader id (the name of their submission folder, so the same rules
apply: letters, digits and ``_ . @ + -``); ``platform_id`` is their id on the learning
platform (nbgrader's ``lms_user_id``; Canvas's user ID). The roster is checked whole before
anything is written: a bad row (an id that cannot be a student id, an id twice, an email
without ``@``, a value over nbgrader's 128 characters, a row of the wrong length) is
reported with its line number and nothing is imported. Importing adds and updates
students, never removes one, and an empty cell leaves what the gradebook holds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

from autograder.grading.submitted import InvalidField, check_student_id

COLUMNS = {"id": "id", "first_name": "first_name", "last_name": "last_name", "email": "email",
           "platform_id": "lms_user_id"}  # the CSV's column -> nbgrader's Student attribute
MAX_CHARS = 128  # nbgrader's Student columns are String(128)


class RosterError(ValueError):
    """A roster that cannot be imported; the message lists every bad row."""


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster; an empty string is a value the roster does not give."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    platform_id: str = ""

    def student_fields(self) -> dict[str, str]:
        """nbgrader's ``Student`` attributes the roster gives (the id apart)."""
        return {COLUMNS[f.name]: getattr(self, f.name) for f in fields(self) if f.name != "id" and getattr(self, f.name)}


def read_roster(path: Path) -> list[RosterEntry]:
    """The roster at ``path``; :class:`RosterError` naming every bad row (with its line) when one is bad."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError(f"{path} is not UTF-8 text: save it as CSV (UTF-8)") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise RosterError(f"{path} is empty: it needs a header row, e.g. {','.join(COLUMNS)}")
    header = [name.strip().lower() for name in rows[0]]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or "id" not in header or len(set(header)) != len(header):
        raise RosterError(f"{path}: the header row must name the columns once each, among {', '.join(COLUMNS)} "
                          f"(id required); it has {', '.join(header) or 'nothing'}")
    entries, problems, seen = [], [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            entry = _entry(header, row)
        except InvalidField as error:
            problems.append(f"line {line}: {error}")
            continue
        if entry.id in seen:
            problems.append(f"line {line}: the id {entry.id!r} is also on line {seen[entry.id]}")
            continue
        seen[entry.id] = line
        entries.append(entry)
    if problems:
        raise RosterError(f"{path}: nothing was imported; fix these rows and run it again:\n  " + "\n  ".join(problems))
    return entries


def _entry(header: list[str], row: list[str]) -> RosterEntry:
    if len(row) != len(header):
        raise InvalidField(f"{len(row)} values for {len(header)} columns (a comma inside a value needs quotes)")
    values = {name: cell.strip() for name, cell in zip(header, row)}
    for name, value in values.items():
        if len(value) > MAX_CHARS:
            raise InvalidField(f"the {name} is longer than {MAX_CHARS} characters")
    try:
        check_student_id(values["id"])
    except InvalidField:
        raise InvalidField(f"the id {values['id'][:40]!r} is not a student id (letters, digits and _ . @ + -, "
                           "starting with a letter or digit)") from None
    if values.get("email") and "@" not in values["email"]:
        raise InvalidField(f"the email {values['email'][:40]!r} has no @")
    return RosterEntry(**values)


def import_roster(db_url: str, course_id: str, entries: list[RosterEntry]) -> tuple[int, int]:
    """Add or update ``entries`` in nbgrader's student table, in one transaction; ``(added, updated)``."""
    from nbgrader.api import Gradebook, MissingEntry, Student

    added = updated = 0
    with Gradebook(db_url, course_id) as gradebook:
        try:
            for entry in entries:
                try:
                    student = gradebook.find_student(entry.id)
                    updated += 1
                except MissingEntry:
                    student = Student(id=entry.id)
                    gradebook.db.add(student)
                    added += 1
                for name, value in entry.student_fields().items():
                    setattr(student, name, value)
            gradebook.db.commit()
        except BaseException:
            gradebook.db.rollback()
            raise
    return added, updated
