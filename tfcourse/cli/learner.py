"""``tfcourse check`` and ``tfcourse progress``: a learner's notebooks, scored as the instructor will."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfcourse.cli.errors import command


def _check(args: argparse.Namespace) -> int:
    from autograder.notebook import format_report, score_notebook

    score = score_notebook(args.notebook)
    print(score.to_json() if args.json else format_report(score))
    return 0 if score.score == score.max_score else 1


def _progress(args: argparse.Namespace) -> int:
    """One line per lesson (its score, or why there is none), then the total."""
    from autograder.notebook import score_notebook
    from autograder.registry import LESSONS

    total = maximum = 0.0
    for lesson in LESSONS:
        path = Path(args.dir) / lesson / f"{lesson}.ipynb"
        if not path.exists():
            print(f"{lesson:<20} no notebook at {path}")
            continue
        try:
            score = score_notebook(path)
        except ValueError as error:  # an unreadable notebook: say so on its line and go on
            print(f"{lesson:<20} {error}")
            continue
        total, maximum = total + score.score, maximum + score.max_score
        done = sum(c.passed for c in score.checks)
        print(f"{lesson:<20} {score.score:>4g} / {score.max_score:<4g} points   {done}/{len(score.checks)} exercises pass")
    print(f"{'total':<20} {total:>4g} / {maximum:<4g} points")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``check`` and ``progress``."""
    check = commands.add_parser("check", help="run a notebook and score it as the instructor will (hidden cases aside)")
    check.add_argument("notebook")
    check.add_argument("--json", action="store_true", help="one JSON object with the per-exercise checks")
    command(check, _check, ValueError)
    progress = commands.add_parser("progress", help="score your notebooks of all seven lessons")
    progress.add_argument("--dir", default="exercises", help="the folder holding <lesson>/<lesson>.ipynb")
    command(progress, _progress)
