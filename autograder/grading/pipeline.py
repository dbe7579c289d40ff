"""Grading a class: every submission of an assignment, in sandboxes side by side, judged here.

For each submission and notebook: the submission is read as untrusted data, the static
scan rejects forbidden code (:mod:`autograder.grading.submission`), the rest runs in a confined
child of the grading zygote (:mod:`autograder.grading.sandbox`), and the outputs that come back
are judged on this side against the reference's answers (:mod:`autograder.runner`). A
timeout, a crash, a memory blow-up or a corrupt notebook becomes that submission's verdict,
with the reason; only a failure of the sandbox itself leaves a submission ungraded (it is
graded on the next run). Results are committed one submission at a time
(:mod:`autograder.grading.gradebook`), so a run stopped midway resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat
import torch
from nbgrader.utils import compute_checksum, determine_grade

from autograder.checker import report
from autograder.harness.confine import Limits
from autograder.grading.course import Course
from autograder.grading.gradebook import GradebookWriter, Journal, NotebookGrades
from autograder.harness.calls import MESSAGE_CHARS, Produced
from autograder.harness.serve import Job
from autograder.harness.mismatch import STAGES, Mismatch
from autograder.scores import CellCheck, NotebookScore
from autograder.grading.plan import MANUAL, SOLUTION, Check, GradedCell, NotebookPlan, PlanError
from autograder.runner import CaseOutcome, judge
from autograder.grading.sandbox import Sandbox, SandboxError, SandboxRun, pickle_job
from autograder.grading.submission import UnreadableNotebook, autograded_notebook, build_program, read_submission

GRADER_VERSION = "1"  # part of every submission's digest: a new grader regrades everything
NO_CHECK = ("this graded cell calls no check(): tfcourse grade judges check() cells only. Grade this assignment "
            "with nbgrader autograde, or rewrite the cell as check(...) calls.")


@dataclass
class SubmissionGrades:
    """Everything a graded submission commits: per notebook grades, and the autograded notebooks."""

    student: str
    digest: str
    timestamp: str | None
    notebooks: list[NotebookGrades]
    autograded: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    reused: bool = False


@dataclass
class _TaskResults:
    """What the sandbox reported for one check."""

    started: bool = False
    missing: Mismatch | None = None
    produced: dict[int, Produced] = field(default_factory=dict)


def grade_notebook(sandbox: Sandbox, plan: NotebookPlan, path: Path, student: str, assignment: str,
                   limits: Limits) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Grade one submitted notebook: its grades, and its autograded notebook (for an unreadable
    submission, the released notebook carrying the reason). Raises only :class:`SandboxError`,
    when the sandbox itself failed."""
    try:
        notebook = read_submission(path)
    except UnreadableNotebook as error:
        verdicts = {grade_id: (False, str(error)) for grade_id in plan.graded}
        autograded = autograded_notebook(plan, plan.release, verdicts)
        return _grades(plan, student, assignment, verdicts, autograded), autograded
    program = build_program(plan, notebook)
    run = SandboxRun(events=[{"event": "done"}])
    if any(isinstance(step, int) for step in program.steps):
        run = sandbox.run(Job(program.steps, plan.tasks, limits.seconds_per_call))
    results = _task_results(run, plan)
    ending = run.ending(limits)
    verdicts = {grade_id: _cell_verdict(plan, cell, program.rejected, results, ending)
                for grade_id, cell in plan.graded.items()}
    autograded = autograded_notebook(plan, notebook, verdicts)
    return _grades(plan, student, assignment, verdicts, autograded), autograded


def _cell_verdict(plan: NotebookPlan, cell: GradedCell, rejected: dict[int, Mismatch],
                  results: dict[int, _TaskResults], ending: str | None) -> tuple[bool, str]:
    if not cell.checks:
        return False, NO_CHECK
    verdicts = [_check_verdict(plan, check, task, rejected, results, ending)
                for check, task in zip(cell.checks, cell.tasks)]
    return all(passed for passed, _ in verdicts), "\n".join(message for _, message in verdicts)


def _check_verdict(plan: NotebookPlan, check: Check, task: int, rejected: dict[int, Mismatch],
                   results: dict[int, _TaskResults], ending: str | None) -> tuple[bool, str]:
    name = check.exercise.name
    if task in rejected:
        return False, f"{name}: {rejected[task].message}"
    result = results.get(task, _TaskResults())
    if result.missing:
        return False, f"{name}: {result.missing.message}"
    outcomes = _outcomes(check, plan.prepared[task], result, ending)
    return all(o.passed for o in outcomes), report(check.exercise, outcomes)


def _grades(plan: NotebookPlan, student: str, assignment: str, verdicts: dict[str, tuple[bool, str]],
            autograded: nbformat.NotebookNode) -> NotebookGrades:
    """The JSON report and the gradebook's values; solution cells left as released get nbgrader's
    "No response." and a manually graded one its zero, as under ``nbgrader autograde``."""
    checks = [CellCheck(grade_id.removeprefix("check_"), cell.points if verdicts[grade_id][0] else 0.0,
                        cell.points, verdicts[grade_id][0], verdicts[grade_id][1])
              for grade_id, cell in plan.graded.items()]
    score = NotebookScore(student, assignment, sum(c.points for c in checks), sum(c.max_points for c in checks),
                          checks)
    grades: dict[str, float | None] = {grade_id: c.points for grade_id, c in zip(plan.graded, checks)}
    comments: dict[str, str | None] = {}
    for grade_id, role in plan.roles.items():
        if role in (SOLUTION, MANUAL):
            cell = _autograded_cell(autograded, grade_id)
            unchanged = cell is None or cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)
            comments[grade_id] = "No response." if unchanged else None
            if role == MANUAL:
                grades[grade_id] = 0.0 if cell is None else determine_grade(cell)[0]
    return NotebookGrades(plan.name, score, grades, comments)


class AssignmentGrader:
    """Grades submissions of one assignment; the plans (cases and the reference's answers) are built once."""

    def __init__(self, course: Course, assignment: str, devices: list[torch.device], limits: Limits):
        self.course, self.assignment, self.devices, self.limits = course, assignment, devices, limits
        seed = course.hidden_seed()
        self.plans = [NotebookPlan(path, course.release_notebook(assignment, path.stem), seed, devices)
                      for path in course.source_notebooks(assignment)]
        for plan in self.plans:
            check_sendable(plan)
        self._salt = "|".join([GRADER_VERSION, str(seed), ",".join(map(str, devices)), repr(limits)] + [
            _digest_file(p) for plan in self.plans for p in (course.source_notebook(assignment, plan.name),
                                                              course.release_notebook(assignment, plan.name))])

    def digest(self, folder: Path) -> str:
        """A fingerprint of the submission and of everything its grade depends on."""
        parts = [self._salt] + [_digest_file(folder / f"{plan.name}.ipynb") for plan in self.plans]
        parts.append(_digest_file(folder / "timestamp.txt"))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def grade(self, sandbox: Sandbox, student: str, folder: Path) -> SubmissionGrades:
        """Grade one submission; :class:`SandboxError` only when the sandbox itself failed."""
        grades = SubmissionGrades(student, self.digest(folder), self.course.timestamp(folder), [])
        for plan in self.plans:
            notebook_grades, grades.autograded[plan.name] = grade_notebook(
                sandbox, plan, folder / f"{plan.name}.ipynb", student, self.assignment, self.limits)
            grades.notebooks.append(notebook_grades)
        return grades


def check_sendable(plan: NotebookPlan) -> None:
    """Fail before grading when a case input cannot go to the sandbox (a spec problem, not a learner's)."""
    try:
        pickle_job(Job([], plan.tasks, 0.0))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise PlanError(f"the cases of {plan.name} cannot be sent to the grading sandbox: {error}") from None


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


def _autograded_cell(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode | None:
    return next((c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id), None)


def _task_results(run: SandboxRun, plan: NotebookPlan) -> dict[int, _TaskResults]:
    """The sandbox's events, sorted by check; anything malformed is dropped (its case counts as not run)."""
    results: dict[int, _TaskResults] = {}
    for event in run.events:
        task = event.get("task")
        if type(task) is not int or not 0 <= task < len(plan.tasks):
            continue
        result = results.setdefault(task, _TaskResults())
        kind = event.get("event")
        if kind == "task":
            result.started = True
        elif kind == "missing":
            result.missing = _mismatch(event)
        elif kind == "case" and type(event.get("case")) is int and event["case"] not in result.produced:
            result.produced[event["case"]] = _produced(event)
    return results


def _mismatch(event: dict[str, Any]) -> Mismatch:
    stage = event.get("stage") if event.get("stage") in STAGES else "raises"
    message = event.get("message")
    return Mismatch(stage, message[:MESSAGE_CHARS] if isinstance(message, str) else "your code failed.")


def _produced(event: dict[str, Any]) -> Produced:
    if event.get("stage") is not None:
        return Produced(failure=_mismatch(event))
    gradients = event.get("gradients")
    return Produced(event.get("output"), gradients if isinstance(gradients, dict) else None)


def _outcomes(check: Check, prepared: list, result: _TaskResults, ending: str | None) -> list[CaseOutcome]:
    """Judge every case; one without a result failed, with the reason the run gives."""
    outcomes, first_missing = [], True
    for number, case in enumerate(prepared):
        produced = result.produced.get(number)
        if produced is None:
            why = ending or "no result came back for this case"
            message = (f"stopped while running this case: {why}." if first_missing and result.started
                       else f"not run: {why}.")
            produced, first_missing = Produced(failure=Mismatch("timeout" if ending else "raises", message)), False
        outcomes.append(judge(check.exercise, case, produced))
    return outcomes


# --- the class -------------------------------------------------------------------------------------

@dataclass
class ClassRun:
    """A grading run's outcome: the graded submissions, the ones left ungraded by a sandbox failure
    (student -> reason), and whether the run was cut short."""

    graded: list[SubmissionGrades] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def grade_class(course: Course, assignment: str, workers: int, devices: list[torch.device], limits: Limits,
                force: bool = False, on_graded: Callable[[SubmissionGrades], None] = lambda grades: None,
                progress: Callable[[int, int], Any] | None = None) -> ClassRun:
    """Grade every submission of ``assignment`` with ``workers`` sandboxes at once.

    Submissions already graded with the same digest are taken from the journal (use
    ``force`` to grade them again). ``on_graded`` is called once per submission, in the
    calling thread, after its grades are committed. ``progress(done, total)`` returns a
    progress bar-like object with ``update()`` and ``close()``.
    """
    grader = AssignmentGrader(course, assignment, devices, limits)
    journal = Journal(course.journal_path(assignment))
    submissions = course.submissions(assignment)
    journaled = journal.entries()
    run = ClassRun()
    with GradebookWriter(course.db_url, course.course_id) as gradebook:
        gradebook.check_assignment(assignment)
        pending = []
        for student, folder in submissions:
            entry = journaled.get(student)
            if entry and not force and entry["digest"] == grader.digest(folder):
                grades = _restore(grader, gradebook, entry, student, folder)
                run.graded.append(grades)
                on_graded(grades)
            else:
                pending.append((student, folder))
        bar = progress(len(submissions) - len(pending), len(submissions)) if progress else None
        try:
            _grade_pending(grader, gradebook, journal, pending, workers, run, on_graded, bar)
        finally:
            if bar is not None:
                bar.close()
    return run


def _grade_pending(grader: AssignmentGrader, gradebook: GradebookWriter, journal: Journal,
                   pending: list[tuple[str, Path]], workers: int, run: ClassRun,
                   on_graded: Callable[[SubmissionGrades], None], bar: Any) -> None:
    if not pending:
        return
    preload = tuple(sorted({name for plan in grader.plans for name in plan.imports}))
    sandbox = Sandbox(grader.limits, grader.course.hidden_paths(), preload)
    print(sandbox.isolation.describe(), file=sys.stderr)
    executor = ThreadPoolExecutor(max_workers=workers)
    futures: dict[Future, str] = {executor.submit(grader.grade, sandbox, student, folder): student
                                  for student, folder in pending}
    try:
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                student = futures.pop(future)
                try:
                    grades = future.result()
                except SandboxError as error:
                    run.failed[student] = str(error)
                else:
                    _commit(grader, gradebook, journal, grades)
                    run.graded.append(grades)
                    on_graded(grades)
                if bar is not None:
                    bar.update()
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        sandbox.close()


def _commit(grader: AssignmentGrader, gradebook: GradebookWriter, journal: Journal, grades: SubmissionGrades) -> None:
    course, assignment = grader.course, grader.assignment
    for name, notebook in grades.autograded.items():
        _write_atomically(course.autograded_notebook(grades.student, assignment, name), notebook)
    course.copy_submission_files(grades.student, assignment)
    gradebook.record(assignment, grades.student, grades.timestamp, grades.notebooks)
    journal.append(grades.student, grades.digest, grades.notebooks)


def _restore(grader: AssignmentGrader, gradebook: GradebookWriter, entry: dict, student: str,
             folder: Path) -> SubmissionGrades:
    """A submission graded by an earlier run: its journal entry, with the gradebook and the
    autograded notebooks put back if they were lost."""
    notebooks = [NotebookGrades.from_json(data) for data in entry["notebooks"]]
    grades = SubmissionGrades(student, entry["digest"], grader.course.timestamp(folder), notebooks, reused=True)
    if not gradebook.agrees(grader.assignment, student, notebooks):
        gradebook.record(grader.assignment, student, grades.timestamp, notebooks)
    for plan, notebook in zip(grader.plans, notebooks):
        target = grader.course.autograded_notebook(student, grader.assignment, plan.name)
        if not target.exists():
            try:
                submitted = read_submission(folder / f"{plan.name}.ipynb")
            except UnreadableNotebook:
                submitted = plan.release
            verdicts = {grade_id: (check.passed, check.message)
                        for grade_id, check in zip(plan.graded, notebook.score.checks)}
            _write_atomically(target, autograded_notebook(plan, submitted, verdicts))
            grader.course.copy_submission_files(student, grader.assignment)
    return grades


def _write_atomically(path: Path, notebook: nbformat.NotebookNode) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    nbformat.write(notebook, temporary)
    os.replace(temporary, path)
