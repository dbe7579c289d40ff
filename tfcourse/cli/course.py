"""The instructor's commands: ``init``, ``release``, ``collect``, ``grade``, ``feedback`` and ``export``.

    tfcourse init COURSE_DIR
    tfcourse exchange COURSE_DIR PATH
    tfcourse release|collect|grade|feedback ASSIGNMENT --course COURSE_DIR
    tfcourse export --course COURSE_DIR [--format csv|canvas|moodle] [--output FILE]
    tfcourse deadline ASSIGNMENT DUE|none [--student NAME --extension 2d] --course COURSE_DIR
    tfcourse roster CSV --course COURSE_DIR

The course directory is an ordinary nbgrader course (:mod:`autograder.grading.course`);
``release``, ``collect`` and ``feedback`` run nbgrader itself, ``grade`` runs
:mod:`autograder.grading.pipeline`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.grading.course import (
    FEEDBACK_EXPORTER,
    REPOSITORY,
    Course,
    CourseError,
    init_course,
    run_nbgrader,
)
from autograder.grading.untrusted_files import shown
from tfcourse.cli.errors import CommandError, command
from tfcourse.cli.options import add_device_option

if TYPE_CHECKING:
    import torch

    from autograder.grading.early_sandbox import SandboxStart
    from autograder.grading.pipeline import ClassRun, SubmissionGrades
    from autograder.harness.confine import Limits

INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C


def _init(args: argparse.Namespace) -> int:
    course = init_course(args.course_dir, args.solutions, args.course_id, args.exchange)
    assignments = sorted(p.name for p in (course.root / "source").iterdir())
    print(f"course ready at {course.root} with {len(assignments)} assignments: {', '.join(assignments)}\n"
          f"next: tfcourse release {assignments[0]} --course {args.course_dir}")
    return 0


def _exchange(args: argparse.Namespace) -> int:
    from autograder.grading.exchange import set_exchange, shared

    exchange = set_exchange(args.course_dir, args.exchange)
    print(f"the course {args.course_dir} now uses the exchange {exchange}; release its assignments again "
          "(`tfcourse release ASSIGNMENT`) for students to fetch them from there")
    if not shared(exchange):
        print(f"note: other users cannot write into {exchange}; a class on this machine needs "
              f"`chmod 1777 {exchange}` (see docs/jupyterhub.md)", file=sys.stderr)
    return 0


def _run_steps(course: Course, *steps: tuple[str, ...]) -> int:
    """Run the nbgrader commands in turn; the first failure's exit status, or 0."""
    for step in steps:
        status = run_nbgrader(course, *step)
        if status:
            print(f"error: `nbgrader {' '.join(step)}` failed (exit status {status}); its messages are above",
                  file=sys.stderr)
            return status
    return 0


def _release(args: argparse.Namespace) -> int:
    return _run_steps(Course(args.course), ("generate_assignment", args.assignment, "--force"),
                      ("release_assignment", args.assignment, "--force"))


def _collect(args: argparse.Namespace) -> int:
    return _run_steps(Course(args.course), ("collect", args.assignment, "--update"))


def _feedback(args: argparse.Namespace) -> int:
    """Generate every student's feedback (learners' HTML sanitised), then release what nbgrader's exchange
    can deliver."""
    course = Course(args.course)
    status = _run_steps(course, ("generate_feedback", args.assignment, "--force",
                                 f"--GenerateFeedback.exporter_class={FEEDBACK_EXPORTER}"))
    if status:
        return status
    unreleasable = course.feedback_without_exchange(args.assignment)
    exclude = []
    if unreleasable:
        print(f"note: {len(unreleasable)} submission(s) did not come through nbgrader's exchange "
              f"({', '.join(unreleasable)}), so their feedback cannot be released to it; it is in "
              f"{course.feedback_folder('STUDENT', args.assignment)} for you to send.", file=sys.stderr)
        exclude = [f"--CourseDirectory.student_id_exclude={','.join(unreleasable)}"]
    return _run_steps(course, ("release_feedback", args.assignment, *exclude))


def _export(args: argparse.Namespace) -> int:
    from autograder.grading.export import export_grades

    course = Course(args.course)
    output = args.output or course.root / ("grades.csv" if args.format == "csv" else f"grades-{args.format}.csv")
    rows = export_grades(course, args.format, output)
    print(f"wrote {rows} students' grades ({args.format} layout) to {output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from autograder.grading.class_report import class_report, write_report

    course = Course(args.course)
    output = args.output or course.root / "reports" / args.assignment
    page = write_report(class_report(course, args.assignment), output)
    print(f"wrote the report on {args.assignment} to {page}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    """Exit status 0 when every submission was graded, 1 when some could not be (each is named with
    the reason), 2 for a problem with the course, 130 when interrupted."""
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    course = Course(args.course)  # a wrong course is told before torch and the pipeline are imported
    from autograder.grading.early_sandbox import SandboxStart
    from autograder.harness.confine import Limits

    limits = Limits() if args.timeout is None else Limits(
        wall_seconds=args.timeout, seconds_per_call=min(Limits.seconds_per_call, args.timeout / 2))
    started = SandboxStart(limits, course.hidden_paths())  # starts while the pipeline is imported and prepared
    try:
        return _grade_class(args, course, limits, started)
    finally:
        started.close()


def _grade_class(args: argparse.Namespace, course: Course, limits: Limits, started: SandboxStart) -> int:
    import torch
    from tqdm import tqdm

    from autograder.grading.pipeline import grade_class
    from autograder.grading.summary import summarise, table, to_json

    devices = grading_devices(args.device)
    torch.set_num_threads(1)  # the sandboxes need the cores

    def show(grades: SubmissionGrades) -> None:
        if args.json:
            tqdm.write("\n".join(n.score.to_json() for n in grades.notebooks), file=sys.stdout)
            sys.stdout.flush()

    def bar(done: int, total: int) -> tqdm:
        return tqdm(total=total, initial=done, unit="submission", desc=args.assignment, file=sys.stderr)

    try:
        run = grade_class(course, args.assignment, args.workers, devices, limits, args.force, show, bar,
                          students=args.student, exercise=args.exercise, started=started)
    except KeyboardInterrupt:
        print("interrupted before grading started: nothing was changed", file=sys.stderr)
        return INTERRUPTED
    _print_problems(run)
    rows = summarise(course, args.assignment, run)
    if not args.json:
        print(table(rows))
    if args.summary_json is not None:
        args.summary_json.write_text(to_json(args.assignment, rows) + "\n")
    if run.interrupted:
        print(f"interrupted: {len(run.graded)} submissions are graded and saved; run the same command again to "
              "grade the rest", file=sys.stderr)
        return INTERRUPTED
    return 1 if run.failed else 0


def _print_problems(run: ClassRun) -> None:
    """What was odd about the submissions graded, then who could not be graded and why."""
    for grades in run.graded:
        for problem in grades.problems:
            print(f"note: {grades.student}: {problem}", file=sys.stderr)
    for student, reason in run.failed.items():
        print(f"not graded: {shown(student)}: {reason}", file=sys.stderr)
    if run.failed:
        print(f"{len(run.failed)} submission(s) could not be graded: {', '.join(map(shown, run.failed))}",
              file=sys.stderr)


def grading_devices(choice: str | None) -> list[torch.device]:
    """The devices the checks' cases run on: the CPU, and CUDA unless ``--device cpu``."""
    import torch

    from autograder.runner import available_devices

    if choice == "cpu":
        return [torch.device("cpu")]
    if choice == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: no usable CUDA device here (see `tfcourse doctor`); "
                           "grade with --device cpu")
    return available_devices()


def _add_course_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--course", type=Path, default=Path("."), help="the course directory (default: here)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``init``, ``release``, ``collect``, ``grade``, ``feedback`` and ``export``."""
    init = commands.add_parser("init", help="make an nbgrader course directory holding every lesson")
    init.add_argument("course_dir", type=Path)
    init.add_argument("--solutions", type=Path, default=REPOSITORY / "solutions",
                      help="the lessons' nbgrader source notebooks (default: the repository's solutions/)")
    init.add_argument("--course-id", default="tfcourse")
    init.add_argument("--exchange", type=Path, default=None, help="nbgrader's exchange (default: COURSE_DIR/exchange)")
    command(init, _init, CourseError, OSError)
    exchange = commands.add_parser("exchange", help="make a course use another nbgrader exchange (a shared one)")
    exchange.add_argument("course_dir", type=Path)
    exchange.add_argument("exchange", type=Path, help="the exchange folder, created with mode 1777 when missing")
    command(exchange, _exchange, OSError)
    for name, help_text, run in (
            ("release", "generate an assignment from its source and release it to the exchange", _release),
            ("collect", "collect submissions from the exchange into the course", _collect),
            ("feedback", "generate HTML feedback from the autograded notebooks and release it", _feedback)):
        step = commands.add_parser(name, help=help_text)
        step.add_argument("assignment")
        _add_course_option(step)
        command(step, run, CourseError)
    grade = commands.add_parser("grade", help="grade every submission of an assignment in sandboxes")
    grade.add_argument("assignment")
    _add_course_option(grade)
    grade.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    add_device_option(grade, "cpu: CPU cases only; cuda: CPU and CUDA cases (default: as check() does here)")
    grade.add_argument("--json", action="store_true", help="one JSON object per notebook instead of a table")
    grade.add_argument("--force", action="store_true", help="grade again submissions graded by an earlier run "
                       "(grades and comments given by hand are kept)")
    grade.add_argument("--student", action="append", default=[], metavar="NAME",
                       help="grade (again) only this student's submission; repeatable")
    grade.add_argument("--exercise", default=None, metavar="NAME",
                       help="grade again only the graded cells that check this exercise, keeping the others' grades")
    grade.add_argument("--summary-json", type=Path, default=None, metavar="PATH",
                       help="also write the summary table (scores, late penalties, reasons) as JSON to PATH")
    grade.add_argument("--timeout", type=float, default=None, help="wall-clock seconds per submission")
    command(grade, _grade, CourseError, ValueError, LookupError)
    report = commands.add_parser("report", help="what to re-teach: pass rates, scores and the mistakes most "
                                 "students made, per exercise, as an HTML page with figures")
    report.add_argument("assignment")
    _add_course_option(report)
    report.add_argument("--output", type=Path, default=None, help="default: COURSE_DIR/reports/ASSIGNMENT")
    command(report, _report, CourseError, LookupError, OSError)
    export = commands.add_parser("export", help="grades for a learning platform, one row per student")
    _add_course_option(export)
    export.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv",
                        help="csv: every column (statuses, timestamps, lateness, penalties); canvas, moodle: "
                             "their gradebook imports (see docs/grading.md)")
    export.add_argument("--output", type=Path, default=None,
                        help="default: COURSE_DIR/grades.csv (grades-FORMAT.csv for canvas and moodle)")
    command(export, _export, CourseError, OSError)
