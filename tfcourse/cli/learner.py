"""``tfcourse check`` and ``tfcourse progress``: a learner's notebooks, graded as the instructor grades them."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfcourse.cli.errors import CommandError, command
from tfcourse.cli.options import add_device_option

DEVICE_HELP = "cpu: CPU cases only; cuda: CPU and CUDA cases (default: CUDA too when a GPU is usable)"


def _self_check(args: argparse.Namespace):
    from autograder.grading.selfcheck import SelfCheck
    from tfcourse.cli.course import grading_devices

    return SelfCheck(grading_devices(args.device))


def _check(args: argparse.Namespace) -> int:
    path = Path(args.notebook)
    if not path.is_file():
        raise CommandError(f"there is no notebook at {path}: give the path of your copy of an exercise notebook")
    from autograder.notebook import format_report

    with _self_check(args) as checker:
        score, problems = checker.score(path)
    print(score.to_json() if args.json else format_report(score, problems))
    return 0 if score.score == score.max_score else 1


def _progress(args: argparse.Namespace) -> int:
    """One line per lesson (its score, or why there is none), then the total."""
    from autograder.grading.plan import PlanError
    from autograder.registry import LESSONS

    total = maximum = 0.0
    with _self_check(args) as checker:
        for lesson in LESSONS:
            path = Path(args.dir) / lesson / f"{lesson}.ipynb"
            if not path.exists():
                print(f"{lesson:<20} no notebook at {path}")
                continue
            try:
                score, _ = checker.score(path)
            except PlanError as error:
                print(f"{lesson:<20} {error}")
                continue
            total, maximum = total + score.score, maximum + score.max_score
            done = sum(c.passed for c in score.checks)
            print(f"{lesson:<20} {score.score:>4g} / {score.max_score:<4g} points   "
                  f"{done}/{len(score.checks)} exercises pass")
    print(f"{'total':<20} {total:>4g} / {maximum:<4g} points")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``check`` and ``progress``."""
    check = commands.add_parser("check", help="grade a notebook as tfcourse grade does, on the visible cases")
    check.add_argument("notebook")
    check.add_argument("--json", action="store_true", help="one JSON object with the per-exercise checks")
    add_device_option(check, DEVICE_HELP)
    command(check, _check, ValueError)
    progress = commands.add_parser("progress", help="grade your notebooks of every lesson, on the visible cases")
    progress.add_argument("--dir", default="exercises", help="the folder holding <lesson>/<lesson>.ipynb")
    add_device_option(progress, DEVICE_HELP)
    command(progress, _progress)
