"""Due dates, extensions and late penalties, kept where nbgrader keeps them.

An assignment's due date is nbgrader's ``Assignment.duedate`` and a student's extension is
``SubmittedAssignment.extension`` (both in the gradebook, so formgrader shows them). A
submission is late by

    seconds_late = max(0, timestamp - (duedate + extension))

where ``timestamp`` is the submission's ``timestamp.txt`` (checked by
:mod:`autograder.grading.submitted`; after a resubmission, the last one's). The late policy
is nbgrader's: the plugin class ``c.AssignLatePenalties.plugin_class`` of the course's
``nbgrader_config.py`` (default :class:`nbgrader.plugins.LateSubmissionPlugin`, whose
``c.LateSubmissionPlugin.penalty_method`` is ``"none"`` or ``"zero"``), or this module's
:class:`PerHourPenalty`. As under ``nbgrader autograde``, each notebook of a late
submission gets ``penalty = clip(plugin(student, score, seconds_late), 0, score)`` in
``SubmittedNotebook.late_submission_penalty``; an on-time one gets none.
"""

from __future__ import annotations

import math
import re
import warnings
from datetime import datetime, timedelta
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.utils import parse_utc
from sqlalchemy.exc import SAWarning
from traitlets import Float
from traitlets.config import Config
from traitlets.utils.importstring import import_item

EXTENSION = re.compile(r"(?:(\d+(?:\.\d+)?)([wdhm]))+", re.ASCII)
EXTENSION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhm])", re.ASCII)
UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


class DeadlineError(ValueError):
    """A due date, extension or late policy that cannot be used; the message says how to fix it."""


class PerHourPenalty(LateSubmissionPlugin):
    """A late policy of ours: ``points_per_hour`` points off each notebook per started hour late.

    penalty = ceil(seconds_late / 3600) * points_per_hour   (at most the notebook's score)

    Select it in ``nbgrader_config.py``::

        c.AssignLatePenalties.plugin_class = "autograder.grading.deadlines.PerHourPenalty"
        c.PerHourPenalty.points_per_hour = 0.5
    """

    points_per_hour = Float(1.0, help="Points taken off a late notebook per started hour late.").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        return math.ceil(total_seconds_late / 3600) * self.points_per_hour


def late_policy(config: Config) -> LateSubmissionPlugin:
    """The course's late-submission plugin, configured from ``config`` as ``nbgrader autograde`` configures it."""
    chosen: Any = config.AssignLatePenalties.get("plugin_class", LateSubmissionPlugin)
    try:
        plugin_class = import_item(chosen) if isinstance(chosen, str) else chosen
    except (ImportError, AttributeError) as error:
        raise DeadlineError(f"c.AssignLatePenalties.plugin_class = {chosen!r} cannot be imported ({error}): "
                            "fix it in nbgrader_config.py") from None
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, LateSubmissionPlugin)):
        raise DeadlineError(f"c.AssignLatePenalties.plugin_class = {chosen!r} is not a LateSubmissionPlugin")
    return plugin_class(config=config)


def late_penalties(gradebook: Gradebook, assignment: str, student: str,
                   policy: LateSubmissionPlugin) -> dict[str, float | None]:
    """Each notebook's late penalty under ``policy`` (``None``: not late, or the policy gives none), from the
    submission's timestamp, due date and extension and the notebook's score (manual grades included) as the
    session holds them now."""
    gradebook.db.flush()
    submission = gradebook.find_submission(assignment, student)
    penalties: dict[str, float | None] = {}
    seconds_late = submission.total_seconds_late
    for notebook in submission.notebooks:
        penalty = None
        if seconds_late > 0:
            gradebook.db.expire(notebook, ["score"])
            penalty = policy.late_submission_penalty(student, notebook.score, seconds_late)
        penalties[notebook.name] = None if penalty is None else min(max(float(penalty), 0.0), notebook.score)
    return penalties


def apply_late_penalties(gradebook: Gradebook, assignment: str, student: str, policy: LateSubmissionPlugin) -> None:
    """Set each notebook's ``late_submission_penalty`` to :func:`late_penalties` (the caller commits)."""
    submission = gradebook.find_submission(assignment, student)
    penalties = late_penalties(gradebook, assignment, student, policy)
    for notebook in submission.notebooks:
        notebook.late_submission_penalty = penalties[notebook.name]


def penalties_agree(gradebook: Gradebook, assignment: str, student: str, policy: LateSubmissionPlugin) -> bool:
    """Whether the gradebook's penalties are what ``policy`` gives now (a due date or extension set since the
    submission was graded changes them)."""
    submission = gradebook.find_submission(assignment, student)
    penalties = late_penalties(gradebook, assignment, student, policy)
    return all(notebook.late_submission_penalty == penalties[notebook.name] for notebook in submission.notebooks)


def parse_due_date(text: str) -> datetime:
    """A due date such as ``2026-12-08T23:59`` (UTC) or ``2026-12-08 23:59+01:00``, as nbgrader stores it
    (naive, in UTC)."""
    try:
        moment = parse_utc(text)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or not re.match(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise DeadlineError(f"{text!r} is not a date and time like 2026-12-08T23:59 (UTC) or "
                            "2026-12-08T23:59+01:00")
    return moment


def parse_extension(text: str) -> timedelta:
    """An extension such as ``2d``, ``36h``, ``1w2d``, ``90m`` (``0`` removes one)."""
    if text.strip() == "0":
        return timedelta(0)
    if not EXTENSION.fullmatch(text.strip()):
        raise DeadlineError(f"{text!r} is not an extension like 2d, 36h, 1w2d or 90m (0 removes it)")
    parts: dict[str, float] = {}
    for amount, unit in EXTENSION_PART.findall(text):
        parts[UNITS[unit]] = parts.get(UNITS[unit], 0.0) + float(amount)
    return timedelta(**parts)


def set_due_date(db_url: str, course_id: str, assignment: str, due: datetime | None) -> None:
    """Set (``None``: remove) the assignment's due date in nbgrader's gradebook."""
    with Gradebook(db_url, course_id) as gradebook:
        found = _assignment(gradebook, assignment)
        found.duedate = due
        gradebook.db.commit()


def grant_extension(db_url: str, course_id: str, assignment: str, student: str, extension: timedelta) -> bool:
    """Give ``student`` ``extension`` beyond the due date (``timedelta(0)`` removes it), creating the
    student's gradebook entries where there are none; whether the student was new to the gradebook."""
    with Gradebook(db_url, course_id) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session warnings, as in GradebookWriter
        if not _assignment(gradebook, assignment).notebooks:
            raise DeadlineError(f"{assignment!r} has not been released yet: run `tfcourse release {assignment}` "
                                "before giving extensions")
        try:
            gradebook.find_student(student)
            new = False
        except MissingEntry:
            gradebook.add_student(student)
            new = True
        gradebook.update_or_create_submission(assignment, student)
        gradebook.grant_extension(assignment, student, minutes=extension.total_seconds() / 60)
    return new


def _assignment(gradebook: Gradebook, assignment: str) -> Any:
    try:
        return gradebook.find_assignment(assignment)
    except MissingEntry:
        raise DeadlineError(f"the gradebook has no assignment {assignment!r}") from None
