"""Grading again: which submissions a run grades whatever the journal says, and which cells it regrades.

``tfcourse grade`` takes a submission graded by an earlier run from the journal
(:mod:`autograder.grading.gradebook`). A regrade grades again, instead: every submission
(``--force``), the named students' (``--student``), or, for each submission, only the graded
cells that check one exercise (``--exercise``), the other cells keeping the grades the journal
holds. A regrade's start is written in the journal, so a regrade stopped midway and run again
as the same command grades only what it had not reached.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from autograder.grading.gradebook import NotebookGrades
from autograder.grading.plan import NotebookPlan


@dataclass(frozen=True)
class Regrade:
    """What a run grades again: every submission (``force``), the ``students`` named, and only the cells of
    ``exercise`` when it is given."""

    force: bool = False
    students: tuple[str, ...] = ()
    exercise: str | None = None

    @property
    def active(self) -> bool:
        """Whether the run grades again what the journal already holds."""
        return self.force or bool(self.students) or self.exercise is not None

    def key(self) -> str:
        """The regrade as the journal records it: the same command has the same key."""
        return json.dumps({"force": self.force, "students": sorted(set(self.students)), "exercise": self.exercise})

    def chosen(self, students: list[str], assignment: str) -> tuple[list[str], dict[str, str]]:
        """The submitting ``students`` this run grades, and each named student who has no submission, with why."""
        if not self.students:
            return students, {}
        named = set(self.students)
        missing = {name: f"no submission of {assignment} from {name!r} was collected"
                   for name in sorted(named - set(students))}
        return [student for student in students if student in named], missing


def exercise_cells(plans: list[NotebookPlan], exercise: str) -> dict[str, set[str]]:
    """For each notebook, the graded cells (nbgrader ids) that check ``exercise``; ``ValueError`` naming the
    assignment's exercises when none does."""
    cells = {plan.name: {grade_id for grade_id, cell in plan.graded.items()
                         if any(check.exercise.name == exercise for check in cell.checks)} for plan in plans}
    if not any(cells.values()):
        names = sorted({check.exercise.name for plan in plans for cell in plan.graded.values() for check in cell.checks})
        raise ValueError(f"--exercise {exercise}: no graded cell of this assignment checks it; its exercises are "
                         f"{', '.join(names)}")
    return cells


def keep_others(plan: NotebookPlan, new: NotebookGrades, old: NotebookGrades, regraded: set[str]) -> NotebookGrades:
    """``new``, except that the graded cells not in ``regraded`` keep what ``old`` recorded for them: their check's
    verdict, score and every per-cell value (keyed by nbgrader id, or by check name as in the report)."""
    kept = {grade_id for grade_id in plan.graded if grade_id not in regraded}
    keys = kept | {grade_id.removeprefix("check_") for grade_id in kept}
    previous = {check.name: check for check in old.score.checks}
    checks = [previous.get(check.name, check) if check.name in keys else check for check in new.score.checks]
    score = dataclasses.replace(new.score, score=sum(check.points for check in checks), checks=checks)
    merged = {name: _merged(getattr(new, name), getattr(old, name), keys)
              for name in (f.name for f in dataclasses.fields(NotebookGrades)) if isinstance(getattr(new, name), dict)}
    return dataclasses.replace(new, score=score, **merged)


def _merged(new: dict, old: dict, kept: set[str]) -> dict:
    """``new`` with the entries of ``kept`` keys taken from ``old`` (dropped where ``old`` has none)."""
    merged = {key: value for key, value in new.items() if key not in kept}
    merged.update({key: value for key, value in old.items() if key in kept})
    return merged
