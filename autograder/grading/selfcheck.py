"""``tfcourse check``: a learner's notebook, graded by the pipeline that grades the class.

The learner's notebook goes through exactly what ``tfcourse grade`` does to a submission
(:func:`~autograder.grading.pipeline.grade_submitted`): read as untrusted data with the files
beside it, its check cells restored from the released notebook, the static scan, the same
sandbox and limits, and the judge on this side. Only the cases differ: the plan is built from
the released notebook, whose ``check(...)`` calls name the visible cases alone, so the hidden
ones (which need the instructor's seed) are never run. A score here is the score that
``tfcourse grade`` gives on the visible cases.
"""

from __future__ import annotations

from pathlib import Path

import torch

from autograder.grading.course import hidden_paths
from autograder.grading.lessons import graded_ids, released_notebook
from autograder.grading.pipeline import grade_submitted
from autograder.grading.plan import NotebookPlan, PlanError
from autograder.grading.sandbox import Sandbox
from autograder.grading.submission import UnreadableNotebook, read_submission
from autograder.grading.submitted import Submission, read_learner_folder
from autograder.harness.confine import Limits
from autograder.registry import LESSONS
from autograder.scores import NotebookScore
from autograder.seeds import VISIBLE_SEED

def lesson_of(path: Path, submission: Submission) -> str:
    """The lesson the notebook at ``path`` belongs to: its file name, else the graded cells it shares with
    a released notebook."""
    if path.stem in LESSONS:
        return path.stem
    ids = _grade_ids(submission.file(path.name) or b"", path.name)
    for lesson in LESSONS:
        if ids & _grade_ids(released_notebook(lesson).read_bytes(), lesson):
            return lesson
    raise PlanError(f"{path.name} is not one of the course's exercise notebooks ({', '.join(LESSONS)}): "
                    "check a notebook copied from exercises/, under its own name")


def _grade_ids(data: bytes, name: str) -> set[str]:
    """The nbgrader ids of the graded cells of a notebook's bytes (none when it cannot be read)."""
    try:
        return graded_ids(read_submission(data, name).cells)
    except ValueError:
        return set()


def _check_readable(submission: Submission, path: Path, lesson: str) -> None:
    """:class:`UnreadableNotebook` (a ``ValueError``) saying how to recover when the notebook cannot be read."""
    data = submission.file(path.name)
    try:
        if data is None:
            raise UnreadableNotebook(submission.refusal(path.name) or f"{path} cannot be read")
        read_submission(data, path.name)
    except UnreadableNotebook as error:
        raise UnreadableNotebook(f"{error} The released notebook is {released_notebook(lesson)}.") from None


class SelfCheck:
    """Grades learners' notebooks on the visible cases; one sandbox serves every notebook checked."""

    def __init__(self, devices: list[torch.device], limits: Limits = Limits()):
        self.devices, self.limits = devices, limits
        self._plans: dict[str, NotebookPlan] = {}
        self._sandbox: Sandbox | None = None

    def plan(self, lesson: str) -> NotebookPlan:
        """The plan of ``lesson``'s released notebook: its graded cells with their visible cases."""
        if lesson not in self._plans:
            release = released_notebook(lesson)
            if not release.is_file():
                raise PlanError(f"the released notebook {release} is missing: restore it with git checkout")
            self._plans[lesson] = NotebookPlan(release, release, VISIBLE_SEED, self.devices)
        return self._plans[lesson]

    def score(self, path: Path) -> tuple[NotebookScore, list[str]]:
        """The score of the notebook at ``path``, and what was refused or ignored beside it."""
        submission = read_learner_folder(path)
        plan = self.plan(lesson_of(path, submission))
        _check_readable(submission, path, plan.name)
        if self._sandbox is None:
            self._sandbox = Sandbox(self.limits, hidden_paths([]), tuple(sorted(plan.imports)))
        grades, _ = grade_submitted(self._sandbox, plan, submission, path.name, plan.name, self.limits)
        return grades.score, submission.problems

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()

    def __enter__(self) -> "SelfCheck":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
