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
import pickle
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import nbformat
import torch
from nbgrader.utils import compute_checksum, determine_grade

from autograder.checker import report
from autograder.grading.course import Course
from autograder.grading.deadlines import late_policy
from autograder.grading.early_sandbox import SandboxStart
from autograder.grading.gradebook import GradebookWriter, Journal, JournalEntry, NotebookGrades, file_digests
from autograder.grading.lessons import graded_ids, other_lesson, wrong_lesson_reason
from autograder.grading.losses import CORRUPT, NOT_READ, UNGRADABLE as UNGRADABLE_LOSS, WRONG_LESSON, on_every_cell
from autograder.grading.losses import run_losses
from autograder.grading.mistakes import NO_CHECK as NO_CHECK_MISTAKE
from autograder.grading.mistakes import NOT_DEFINED, UNGRADABLE, named_mistake, stage_mistake
from autograder.grading.plan import MANUAL, SOLUTION, Check, GradedCell, NotebookPlan, PlanError
from autograder.grading.regrade import Regrade, exercise_cells, keep_others
from autograder.grading.sandbox import Sandbox, SandboxError, SandboxRun, pickle_job
from autograder.grading.submission import UnreadableNotebook, autograded_notebook, build_program, read_submission
from autograder.grading.submitted import (
    InvalidField,
    Submission,
    check_student_id,
    feedback_files,
    read_submitted_file,
)
from autograder.harness.calls import MESSAGE_CHARS, Produced
from autograder.harness.confine import Limits
from autograder.harness.mismatch import STAGES, Mismatch
from autograder.harness.serve import Job
from autograder.runner import CaseOutcome, judge_all
from autograder.scores import CellCheck, NotebookScore

GRADER_VERSION = "1"  # part of every submission's digest: a new grader regrades everything
NO_CHECK = ("this graded cell calls no check(): tfcourse grade judges check() cells only. Grade this assignment "
            "with nbgrader autograde, or rewrite the cell as check(...) calls.")


@dataclass
class SubmissionGrades:
    """Everything a graded submission commits: per notebook grades, the autograded notebooks, and the
    submission's files that feedback needs; with what was odd about the submission folder."""

    student: str
    digest: str
    timestamp: str | None
    notebooks: list[NotebookGrades]
    autograded: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    reused: bool = False
    problems: list[str] = field(default_factory=list)  # what in the submission folder was refused or ignored
    kept: dict[str, bytes] = field(default_factory=dict)  # its files the autograded folder keeps for feedback


@dataclass
class _TaskResults:
    """What the sandbox reported for one check."""

    started: bool = False
    missing: Mismatch | None = None
    produced: dict[int, Produced] = field(default_factory=dict)


def grade_notebook(sandbox: Sandbox, plan: NotebookPlan, path: Path, student: str, assignment: str,
                   limits: Limits) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Grade the notebook at ``path`` (a link there is not followed): see :func:`grade_submitted`."""
    return grade_submitted(sandbox, plan, read_submitted_file(path, student), path.name, assignment, limits)


def grade_submitted(sandbox: Sandbox, plan: NotebookPlan, submission: Submission, filename: str, assignment: str,
                    limits: Limits) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Grade the notebook ``filename`` of a submission: its grades, and its autograded notebook (for a
    notebook that cannot be graded, the released notebook carrying the reason). Raises only
    :class:`SandboxError`, when the sandbox itself failed: anything else that goes wrong is the verdict."""
    try:
        notebook = _submitted_notebook(submission, filename)
    except UnreadableNotebook as error:
        kind = NOT_READ if submission.file(filename) is None else CORRUPT
        return _lost_all(plan, submission.student, assignment, str(error), kind)
    try:
        lesson = other_lesson(graded_ids(plan.release.cells), plan.name, notebook)
        if lesson is not None:
            return _lost_all(plan, submission.student, assignment, wrong_lesson_reason(lesson, plan.name),
                             WRONG_LESSON)
        return _grade(sandbox, plan, notebook, submission, assignment, limits)
    except SandboxError:
        raise
    except Exception as error:  # whatever this notebook provokes on this side is its verdict, not the class's end
        return _lost_all(plan, submission.student, assignment,
                         _reason("this notebook could not be graded", error)
                         + ". Restore it from the released assignment and copy your solutions back in.",
                         UNGRADABLE_LOSS)


def _lost_all(plan: NotebookPlan, student: str, assignment: str, reason: str,
              kind: str) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Every graded cell fails with ``reason``, recorded as a loss of ``kind`` (:mod:`autograder.grading.losses`)."""
    grades, autograded = _verdict_on_all(plan, student, assignment, reason)
    grades.losses = on_every_cell(plan, kind, reason)
    return grades, autograded


def _submitted_notebook(submission: Submission, filename: str) -> nbformat.NotebookNode:
    data = submission.file(filename)
    if data is None:
        raise UnreadableNotebook(submission.refusal(filename) or f"no notebook {filename} was submitted")
    return read_submission(data, filename)


def _verdict_on_all(plan: NotebookPlan, student: str, assignment: str,
                    reason: str) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Every graded cell fails with ``reason``, on the released notebook."""
    verdicts = {grade_id: (False, reason) for grade_id in plan.graded}
    autograded = autograded_notebook(plan, plan.release, verdicts)
    mistakes = {grade_id: [UNGRADABLE] for grade_id in plan.graded}
    return _grades(plan, student, assignment, verdicts, autograded, mistakes), autograded


def _grade(sandbox: Sandbox, plan: NotebookPlan, notebook: nbformat.NotebookNode, submission: Submission,
           assignment: str, limits: Limits) -> tuple[NotebookGrades, nbformat.NotebookNode]:
    """Run the notebook's code and checks in the sandbox, with the submission's helper files beside it."""
    program = build_program(plan, notebook)
    run = SandboxRun(events=[{"event": "done"}])
    if any(isinstance(step, int) for step in program.steps):
        run = sandbox.run(Job(program.steps, plan.tasks, limits.seconds_per_call, submission.helpers,
                               program.cell_names))
    results = _task_results(run, plan)
    ending = run.ending(limits)
    cells = {grade_id: _cell_verdict(plan, cell, program.rejected, results, ending)
             for grade_id, cell in plan.graded.items()}
    verdicts = {grade_id: (passed, message) for grade_id, (passed, message, _) in cells.items()}
    mistakes = {grade_id: names for grade_id, (_, _, names) in cells.items() if names}
    autograded = autograded_notebook(plan, notebook, verdicts)
    grades = _grades(plan, submission.student, assignment, verdicts, autograded, mistakes)
    grades.losses = run_losses(plan, results, ending, run.timed_out)
    return grades, autograded


def _cell_verdict(plan: NotebookPlan, cell: GradedCell, rejected: dict[int, Mismatch],
                  results: dict[int, _TaskResults], ending: str | None) -> tuple[bool, str, list[str]]:
    """Whether the cell passes, its report, and the named mistake of each of its failed checks."""
    if not cell.checks:
        return False, NO_CHECK, [NO_CHECK_MISTAKE]
    verdicts = [_check_verdict(plan, check, task, rejected, results, ending)
                for check, task in zip(cell.checks, cell.tasks)]
    return (all(passed for passed, _, _ in verdicts), "\n".join(message for _, message, _ in verdicts),
            [mistake for _, _, mistake in verdicts if mistake])


def _check_verdict(plan: NotebookPlan, check: Check, task: int, rejected: dict[int, Mismatch],
                   results: dict[int, _TaskResults], ending: str | None) -> tuple[bool, str, str | None]:
    name = check.exercise.name
    if task in rejected:
        return False, f"{name}: {rejected[task].message}", stage_mistake(rejected[task])
    result = results.get(task, _TaskResults())
    if result.missing:
        return False, f"{name}: {result.missing.message}", NOT_DEFINED
    outcomes = _outcomes(check, plan.prepared[task], result, ending)
    return all(o.passed for o in outcomes), report(check.exercise, outcomes), named_mistake(check.exercise, outcomes)


def _grades(plan: NotebookPlan, student: str, assignment: str, verdicts: dict[str, tuple[bool, str]],
            autograded: nbformat.NotebookNode, mistakes: dict[str, list[str]]) -> NotebookGrades:
    """The JSON report, the named mistakes of the failed checks and the gradebook's values; solution cells
    left as released get nbgrader's "No response." and a manually graded one its zero, as under
    ``nbgrader autograde``."""
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
    named = {grade_id.removeprefix("check_"): names for grade_id, names in mistakes.items()}
    return NotebookGrades(plan.name, score, grades, comments, named)


class AssignmentGrader:
    """Grades submissions of one assignment; the plans (cases and the reference's answers) are built once."""

    def __init__(self, course: Course, assignment: str, devices: list[torch.device], limits: Limits):
        self.course, self.assignment, self.devices, self.limits = course, assignment, devices, limits
        seed = course.hidden_seed()
        self.plans = [NotebookPlan(path, course.release_notebook(assignment, path.stem), seed, devices)
                      for path in course.source_notebooks(assignment)]
        for plan in self.plans:
            check_sendable(plan)
        self.instructor_files = course.instructor_files(assignment)
        self.notebook_files = [f"{plan.name}.ipynb" for plan in self.plans]
        self._salt = "|".join([GRADER_VERSION, str(seed), ",".join(map(str, devices)), repr(limits)] + [
            _digest_file(p) for plan in self.plans for p in (course.source_notebook(assignment, plan.name),
                                                              course.release_notebook(assignment, plan.name))])

    def read(self, student: str) -> Submission:
        """The student's submission, read once as untrusted data."""
        return self.course.read_submission(student, self.assignment, self.notebook_files)

    def digest(self, submission: Submission) -> str:
        """A fingerprint of the submission and of everything its grade depends on."""
        return hashlib.sha256(f"{self._salt}|{submission.digest(self.notebook_files)}".encode()).hexdigest()

    def grade(self, sandbox: Sandbox, student: str) -> SubmissionGrades:
        """Grade one submission; :class:`SandboxError` only when the sandbox itself failed."""
        submission = self.read(student)
        grades = SubmissionGrades(student, self.digest(submission), submission.timestamp, [],
                                  problems=submission.problems, kept=feedback_files(submission))
        for plan, filename in zip(self.plans, self.notebook_files):
            notebook_grades, grades.autograded[plan.name] = grade_submitted(
                sandbox, plan, submission, filename, self.assignment, self.limits)
            grades.notebooks.append(notebook_grades)
        return grades

    def ungraded(self, grades: SubmissionGrades, reason: str) -> SubmissionGrades:
        """The submission with every check failed for ``reason`` (it could not be graded, or its grades
        could not be recorded), on the released notebooks."""
        failed = SubmissionGrades(grades.student, grades.digest, None, [], problems=[*grades.problems, reason])
        for plan in self.plans:
            notebook_grades, failed.autograded[plan.name] = _lost_all(plan, grades.student, self.assignment, reason,
                                                                      UNGRADABLE_LOSS)
            failed.notebooks.append(notebook_grades)
        return failed

    def autograded_files(self, grades: SubmissionGrades) -> dict[str, bytes]:
        """Everything the submission's autograded folder holds: the instructor's files, the submission's
        timestamp and secret, and the autograded notebooks."""
        notebooks = {f"{name}.ipynb": notebook_bytes(notebook) for name, notebook in grades.autograded.items()}
        return {**self.instructor_files, **grades.kept, **notebooks}


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
    gradients, error = event.get("gradients"), event.get("gradient_error")
    return Produced(event.get("output"), gradients if isinstance(gradients, dict) else None,
                    gradient_error=error[:MESSAGE_CHARS] if isinstance(error, str) else None,
                    activations=event.get("activations") if type(event.get("activations")) is list else None)


def _outcomes(check: Check, prepared: list, result: _TaskResults, ending: str | None) -> list[CaseOutcome]:
    """Judge every case; one without a result failed, with the reason the run gives."""
    everything, first_missing = [], True
    for number in range(len(prepared)):
        produced = result.produced.get(number)
        if produced is None:
            why = ending or "no result came back for this case"
            message = (f"stopped while running this case: {why}." if first_missing and result.started
                       else f"not run: {why}.")
            produced, first_missing = Produced(failure=Mismatch("timeout" if ending else "raises", message)), False
        everything.append(produced)
    return judge_all(check.exercise, prepared, everything)


# --- the class -------------------------------------------------------------------------------------

@dataclass
class ClassRun:
    """A grading run's outcome: the graded submissions, the ones left ungraded (student -> reason: the
    sandbox failed, the folder's name is not a student id, or the grades could not be recorded), and
    whether the run was cut short."""

    graded: list[SubmissionGrades] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def grade_class(course: Course, assignment: str, workers: int, devices: list[torch.device], limits: Limits,
                force: bool = False, on_graded: Callable[[SubmissionGrades], None] = lambda grades: None,
                progress: Callable[[int, int], Any] | None = None, students: Sequence[str] = (),
                exercise: str | None = None, started: SandboxStart | None = None) -> ClassRun:
    """Grade every submission of ``assignment`` (or the ``students``') with ``workers`` sandboxes at once.

    Submissions already graded with the same digest are taken from the journal, unless the run
    is a regrade (:mod:`autograder.grading.regrade`): ``force``, ``students`` or ``exercise`` (only
    the cells that check it are graded again) grade them again, except those that an interrupted
    run of the same regrade already graded. ``on_graded`` is called once per submission, in the
    calling thread, after its grades are committed. ``progress(done, total)`` returns a
    progress bar-like object with ``update()`` and ``close()``. ``started``: the sandbox, started while the
    command got ready (:mod:`autograder.grading.early_sandbox`); the caller closes it.
    """
    grader = AssignmentGrader(course, assignment, devices, limits)
    regrade = Regrade(force, tuple(students), exercise)
    only = exercise_cells(grader.plans, exercise) if exercise is not None else None
    journal = Journal(course.journal_path(assignment))
    journaled = journal.entries()
    run = ClassRun()
    with GradebookWriter(course.db_url, course.course_id, late_policy(course.config)) as gradebook:
        gradebook.check_assignment(assignment)
        recorder = _Recorder(grader, gradebook, journal, run, on_graded, journaled, only)
        submitted = []
        for student, _ in course.submissions(assignment):
            try:
                submitted.append(check_student_id(student))
            except InvalidField as error:
                run.failed[student] = str(error)
        chosen, unknown = regrade.chosen(submitted, assignment)
        run.failed.update(unknown)
        done = journal.regrade_started(regrade.key()) if regrade.active else set()
        pending = [student for student in chosen if (regrade.active and student not in done)
                   or not recorder.restore(journaled.get(student), student)]
        bar = progress(len(chosen) - len(pending), len(chosen)) if progress else None
        try:
            _grade_pending(grader, recorder, pending, workers, bar, started)
        finally:
            if bar is not None:
                bar.close()
        if regrade.active and not run.interrupted and not run.failed:
            journal.regrade_finished(regrade.key())
    return run


def _grade_pending(grader: AssignmentGrader, recorder: "_Recorder", pending: list[str], workers: int,
                   bar: Any, started: SandboxStart | None = None) -> None:
    if not pending:
        return
    if started is not None and started.limits == grader.limits:
        sandbox = started.sandbox()
    else:
        preload = tuple(sorted({name for plan in grader.plans for name in plan.imports}))
        sandbox = Sandbox(grader.limits, grader.course.hidden_paths(), preload)
    print(sandbox.isolation.describe(), file=sys.stderr)
    executor = ThreadPoolExecutor(max_workers=workers)
    futures: dict[Future, str] = {executor.submit(grader.grade, sandbox, student): student for student in pending}
    try:
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                recorder.settle(futures.pop(future), future)
                if bar is not None:
                    bar.update()
    except KeyboardInterrupt:
        recorder.run.interrupted = True
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        sandbox.close()


class _Recorder:
    """Commits graded submissions one at a time: the autograded folder, the gradebook, the journal."""

    def __init__(self, grader: AssignmentGrader, gradebook: GradebookWriter, journal: Journal, run: ClassRun,
                 on_graded: Callable[[SubmissionGrades], None], journaled: dict[str, JournalEntry] | None = None,
                 only: dict[str, set[str]] | None = None):
        self.grader, self.gradebook, self.journal, self.run, self.on_graded = grader, gradebook, journal, run, on_graded
        self.journaled, self.only = journaled or {}, only

    def settle(self, student: str, future: Future) -> None:
        """Record a finished grading: its grades; a failure on this side as the submission's verdict; a
        failure of the sandbox as the submission left ungraded."""
        try:
            grades = self._only_regraded(future.result())
        except SandboxError as error:
            self.run.failed[student] = f"{error} (run the command again to grade it)"
            return
        except Exception as error:  # reading or grading it failed here: its verdict, not the class's end
            empty = SubmissionGrades(student, "-", None, [])
            grades = self.grader.ungraded(empty, _reason("it could not be graded", error))
        self.commit(grades)

    def commit(self, grades: SubmissionGrades) -> None:
        """Commit ``grades``; if that fails, commit the submission as failed with the reason instead, and if
        even that fails, leave it ungraded (the next run grades it)."""
        try:
            self._write(grades)
        except Exception as error:  # a submission whose grades cannot be written must not stop the class
            grades = self.grader.ungraded(grades, _reason("its grades could not be recorded", error))
            try:
                self._write(grades)
            except Exception as again:  # not even the failure could be written: named, graded at the next run
                self.run.failed[grades.student] = _reason("its grades could not be recorded", again)
                return
        self.run.graded.append(grades)
        self.on_graded(grades)

    def _write(self, grades: SubmissionGrades) -> None:
        grader = self.grader
        files = grader.autograded_files(grades)
        grader.course.write_autograded(grades.student, grader.assignment, files)
        self.gradebook.record(grader.assignment, grades.student, grades.timestamp, grades.notebooks)
        self.journal.append(JournalEntry(grades.student, grades.digest, grades.timestamp, grades.notebooks,
                                         file_digests(files)))

    def restore(self, entry: JournalEntry | None, student: str) -> bool:
        """Take a submission graded by an earlier run from its journal entry, repairing the gradebook and
        the autograded folder where they differ from what that run wrote; ``False`` when it must be graded."""
        if entry is None:
            return False
        try:
            return self._restore(entry, self.grader.read(student))
        except Exception:  # a journal line or an autograded folder this run cannot use: grade it again
            return False

    def _restore(self, entry: JournalEntry, submission: Submission) -> bool:
        grader = self.grader
        if entry.digest != grader.digest(submission):
            return False
        student, assignment = submission.student, grader.assignment
        if not self.gradebook.agrees(assignment, student, entry.timestamp, entry.notebooks):
            self.gradebook.record(assignment, student, entry.timestamp, entry.notebooks)
        written = {name: grader.course.read_autograded(student, assignment, name) for name in entry.files}
        if file_digests(written) != entry.files:
            grades = self._regraded(entry, submission)
            grader.course.write_autograded(student, assignment, grader.autograded_files(grades))
        grades = SubmissionGrades(student, entry.digest, entry.timestamp, entry.notebooks, reused=True)
        self.run.graded.append(grades)
        self.on_graded(grades)
        return True

    def _only_regraded(self, grades: SubmissionGrades) -> SubmissionGrades:
        """``grades`` where only some cells are regraded (``--exercise``): the other cells keep what the journal
        holds for the same submission (a submission graded for the first time, or changed since, is graded
        whole), and the autograded notebooks are rebuilt from the merged verdicts."""
        previous = self.journaled.get(grades.student)
        if self.only is None or previous is None or previous.digest != grades.digest:
            return grades
        notebooks = [keep_others(plan, new, old, self.only[plan.name])
                     for plan, new, old in zip(self.grader.plans, grades.notebooks, previous.notebooks)]
        merged = self._regraded(JournalEntry(grades.student, grades.digest, grades.timestamp, notebooks, {}),
                                self.grader.read(grades.student))
        merged.problems = grades.problems
        return merged

    def _regraded(self, entry: JournalEntry, submission: Submission) -> SubmissionGrades:
        """The autograded notebooks of a journaled submission, rebuilt from its verdicts."""
        grades = SubmissionGrades(submission.student, entry.digest, entry.timestamp, entry.notebooks,
                                  kept=feedback_files(submission))
        for plan, filename, notebook in zip(self.grader.plans, self.grader.notebook_files, entry.notebooks):
            try:
                submitted = _submitted_notebook(submission, filename)
            except UnreadableNotebook:
                submitted = plan.release
            verdicts = {grade_id: (check.passed, check.message)
                        for grade_id, check in zip(plan.graded, notebook.score.checks)}
            try:
                grades.autograded[plan.name] = autograded_notebook(plan, submitted, verdicts)
            except Exception:  # it was graded on the released notebook, then
                grades.autograded[plan.name] = autograded_notebook(plan, plan.release, verdicts)
        return grades


def _reason(what: str, error: Exception) -> str:
    return f"{what} ({type(error).__name__}: {str(error)[:200]})"


def notebook_bytes(notebook: nbformat.NotebookNode) -> bytes:
    """The notebook as a file's bytes; text that is not valid Unicode (a lone surrogate) becomes '?'."""
    return (nbformat.writes(notebook) + "\n").encode("utf-8", errors="replace")
