"""A submission folder, read as untrusted data: whose it is, its files, and when it was submitted.

Everything about a submission is the learner's: the folder's name (the student id), the
files in it, their names and their bytes, and ``timestamp.txt``. The folder is read once,
without following anything (:mod:`autograder.grading.untrusted_files`), and what is read is
checked before it is used: a student id must be a plain name, a timestamp must be a time in
nbgrader's format, and whatever is odd (a link, a FIFO, a file too big, a folder that is a
link) is named in :attr:`Submission.problems` instead of being followed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading.untrusted_files import FolderContents, TreeLimits, UntrustedFileError, read_path, read_tree, shown

MAX_NOTEBOOK_BYTES = 32 << 20
MAX_SUBMISSION_BYTES = 64 << 20
MAX_HELPER_BYTES = 16 << 20  # what the learner's code finds beside its notebook, all files together
TIMESTAMP_FILE = "timestamp.txt"
SECRET_FILE = "submission_secret.txt"  # with the timestamp, what nbgrader addresses feedback by
SECRET = re.compile(rb"\s*([0-9A-Za-z]{1,128})\s*")
STUDENT_ID = re.compile(r"\w[\w.@+-]{0,99}")  # letters, digits, _ . @ + -, not first; no spaces, commas or marks
MAX_TIMESTAMP_CHARS = 64
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?( ?(UTC|GMT|Z|[+-]\d{2}:?\d{2}))?", re.ASCII)
YEARS = range(2000, 2101)


class InvalidField(ValueError):
    """A value from a submission that cannot be used; the message says why, without quoting it whole."""


def check_student_id(name: str) -> str:
    """``name`` when it is a plain student id; :class:`InvalidField` otherwise."""
    if not STUDENT_ID.fullmatch(name):
        raise InvalidField(f"the folder name {shown(name)[:120]} is not a student id (up to 100 letters, digits "
                           "and _ . @ + -, starting with a letter or digit); rename the folder")
    return name


def parse_timestamp(data: bytes) -> str:
    """The submission time in ``timestamp.txt``, as nbgrader writes it; :class:`InvalidField` otherwise."""
    from nbgrader.utils import parse_utc  # the grading extra: imported when grading, not when the command starts

    if len(data) > MAX_TIMESTAMP_CHARS:
        raise InvalidField(f"{TIMESTAMP_FILE} is longer than {MAX_TIMESTAMP_CHARS} characters")
    text = data.decode("ascii", errors="replace").strip()
    if not TIMESTAMP.fullmatch(text):
        raise InvalidField(f"{TIMESTAMP_FILE} does not hold a time like 2030-01-31 23:59:00.000000 UTC")
    try:
        moment = parse_utc(text)
    except Exception as error:  # dateutil's errors vary: none of them may stop the class
        raise InvalidField(f"{TIMESTAMP_FILE} does not hold a valid time ({type(error).__name__})") from None
    if moment is None or moment.year not in YEARS:
        raise InvalidField(f"{TIMESTAMP_FILE} holds a time outside the years {YEARS.start}-{YEARS.stop - 1}")
    return text


@dataclass
class Submission:
    """One student's submission of an assignment as read: ``unreadable`` says why the folder could
    not be read at all; ``problems`` name what in it was refused or ignored."""

    student: str
    contents: FolderContents = field(default_factory=FolderContents)
    unreadable: str | None = None
    timestamp: str | None = None
    secret: str | None = None
    problems: list[str] = field(default_factory=list)
    helpers: dict[str, bytes] = field(default_factory=dict)

    def file(self, name: str) -> bytes | None:
        """The bytes of the regular file ``name``, ``None`` when there is none."""
        return self.contents.files.get(name)

    def refusal(self, name: str) -> str | None:
        """Why ``name`` was not read: the whole folder, or that file; ``None`` when it was read or is absent."""
        return self.unreadable or self.contents.refused.get(name)

    def digest(self, names: list[str]) -> str:
        """A fingerprint of the files ``names``, ``timestamp.txt`` and ``submission_secret.txt`` as read, and
        of the helper files the learner's code is given."""
        parts = [hashlib.sha256(data).hexdigest() if (data := self.file(name)) is not None else
                 f"- {self.refusal(name)}" for name in [*names, TIMESTAMP_FILE, SECRET_FILE]]
        parts += [f"{name!r} {hashlib.sha256(data).hexdigest()}" for name, data in sorted(self.helpers.items())]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def read_submission_folder(root: Path, parts: tuple[str, ...], student: str, notebooks: list[str]) -> Submission:
    """The submission at ``root/parts...``: its ``notebooks``, timestamp and secret, and the other files the
    learner's code may read (:attr:`Submission.helpers`), read without following links; never raises for
    what the folder holds."""
    submission = Submission(student)
    limits = TreeLimits(MAX_NOTEBOOK_BYTES, MAX_SUBMISSION_BYTES)
    try:
        submission.contents = read_tree(root, parts, limits, first=[*notebooks, TIMESTAMP_FILE, SECRET_FILE])
    except OSError as error:  # UntrustedFileError says why; another (permissions, say) gives its reason only
        submission.unreadable = str(error) if isinstance(error, UntrustedFileError) else \
            f"the submission folder cannot be read ({error.strerror})"
        submission.problems.append(submission.unreadable)
        return submission
    submission.problems += [reason for name, reason in sorted(submission.contents.refused.items())]
    _read_fields(submission)
    submission.helpers = helper_files(submission.contents, notebooks, submission.problems)
    return submission


def _read_fields(submission: Submission) -> None:
    stamp = submission.file(TIMESTAMP_FILE)
    if stamp is not None:
        try:
            submission.timestamp = parse_timestamp(stamp)
        except InvalidField as error:
            submission.problems.append(f"{error}; the submission is recorded without a time")
    secret = submission.file(SECRET_FILE)
    if secret is not None:
        if match := SECRET.fullmatch(secret):
            submission.secret = match[1].decode()
        else:
            submission.problems.append(f"{SECRET_FILE} is not a secret nbgrader wrote; its feedback cannot be released")


def helper_files(contents: FolderContents, notebooks: list[str], problems: list[str]) -> dict[str, bytes]:
    """The files the learner's code finds in its working folder while graded, as under ``nbgrader
    autograde``: everything read but the graded notebooks, the timestamp and the secret, up to
    :data:`MAX_HELPER_BYTES` together (what does not fit is named in ``problems``)."""
    helpers, total = {}, 0
    for name, data in contents.files.items():
        if name in (*notebooks, TIMESTAMP_FILE, SECRET_FILE):
            continue
        if total + len(data) > MAX_HELPER_BYTES:
            problems.append(f"{shown(name)} was not given to your code: the files beside a notebook may hold "
                            f"{MAX_HELPER_BYTES >> 20} MiB together")
            continue
        helpers[name], total = data, total + len(data)
    return helpers


def read_submitted_file(path: Path, student: str) -> Submission:
    """A submission of the one notebook at ``path`` (its folder is trusted, the file is not followed)."""
    submission = Submission(student)
    try:
        submission.contents.files[path.name] = read_path(path, MAX_NOTEBOOK_BYTES)
    except FileNotFoundError:
        pass
    except UntrustedFileError as error:
        submission.contents.refused[path.name] = str(error)
    return submission


def read_learner_folder(path: Path) -> Submission:
    """A learner's own notebook at ``path`` with the files beside it (its folder is trusted, nothing in it
    is followed), read as :func:`read_submission_folder` reads a submission."""
    folder = path.absolute().parent.resolve()  # the learner's own path to it may pass through links
    return read_submission_folder(folder, (), "", [path.name])


def feedback_files(submission: Submission) -> dict[str, bytes]:
    """What the autograded folder keeps of a submission for nbgrader's feedback: its checked timestamp and secret."""
    files = {TIMESTAMP_FILE: submission.timestamp, SECRET_FILE: submission.secret}
    return {name: value.encode() for name, value in files.items() if value is not None}
