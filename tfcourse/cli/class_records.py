"""The class's records in the gradebook: ``deadline`` (due dates and extensions) and ``roster``.

    tfcourse deadline ASSIGNMENT DUE|none --course COURSE_DIR
    tfcourse deadline ASSIGNMENT --student NAME --extension 2d --course COURSE_DIR
    tfcourse roster CSV --course COURSE_DIR

What they set is nbgrader's (:mod:`autograder.grading.deadlines`, :mod:`autograder.grading.roster`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.grading.course import Course, CourseError
from tfcourse.cli.errors import CommandError, command


def _deadline(args: argparse.Namespace) -> int:
    from autograder.grading.deadlines import (
        grant_extension,
        parse_due_date,
        parse_extension,
        set_due_date,
    )

    course = Course(args.course)
    if (args.student is None) != (args.extension is None):
        raise CommandError("--student and --extension go together: --student NAME --extension 2d")
    if args.due is None and args.student is None:
        raise CommandError("give a due date (e.g. 2026-12-08T23:59, or none to remove it), or --student NAME "
                           "--extension 2d")
    if args.due is not None:
        due = None if args.due.lower() == "none" else parse_due_date(args.due)
        set_due_date(course.db_url, course.course_id, args.assignment, due)
        shown = "no due date" if due is None else f"due {due.isoformat(timespec='minutes')} UTC"
        print(f"{args.assignment}: {shown}; run `tfcourse grade {args.assignment}` to apply the late policy")
    if args.student is not None:
        extension = parse_extension(args.extension)
        new = grant_extension(course.db_url, course.course_id, args.assignment, args.student, extension)
        if new:
            print(f"note: {args.student} was not in the gradebook; added (import the roster with "
                  "`tfcourse roster`)", file=sys.stderr)
        print(f"{args.assignment}: {args.student} has an extension of {extension}")
    return 0


def _roster(args: argparse.Namespace) -> int:
    from autograder.grading.roster import import_roster, read_roster

    course = Course(args.course)
    entries = read_roster(args.csv)
    added, updated = import_roster(course.db_url, course.course_id, entries)
    print(f"roster: {added} students added, {updated} updated")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``deadline`` and ``roster``."""
    deadline = commands.add_parser("deadline", help="set an assignment's due date, or a student's extension")
    deadline.add_argument("assignment")
    deadline.add_argument("due", nargs="?", default=None,
                          help="e.g. 2026-12-08T23:59 (UTC) or 2026-12-08T23:59+01:00; none removes it")
    deadline.add_argument("--student", default=None, help="the student given an extension")
    deadline.add_argument("--extension", default=None, help="e.g. 2d, 36h, 1w2d, 90m; 0 removes it")
    deadline.add_argument("--course", type=Path, default=Path("."), help="the course directory (default: here)")
    command(deadline, _deadline, CourseError, ValueError)
    roster = commands.add_parser("roster", help="import the class roster (a CSV) into nbgrader's student table")
    roster.add_argument("csv", type=Path, help="header: id,first_name,last_name,email,platform_id (id required)")
    roster.add_argument("--course", type=Path, default=Path("."), help="the course directory (default: here)")
    command(roster, _roster, CourseError, ValueError, OSError)
