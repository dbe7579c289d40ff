"""The ``tfcourse`` command line."""

from __future__ import annotations

import argparse
import sys

from autograder.course import register as register_course
from tfcourse.run_cli import register as register_runs


def _doctor(args: argparse.Namespace) -> int:
    from tfcourse.doctor import run_doctor

    return run_doctor()


def _demo(args: argparse.Namespace) -> int:
    from tfcourse.demo import run_demo

    return run_demo(args.reversal_steps, args.lm_steps, args.device)


def _check(args: argparse.Namespace) -> int:
    from autograder.notebook import format_report, score_notebook

    try:
        score = score_notebook(args.notebook)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(score.to_json() if args.json else format_report(score))
    return 0 if score.score == score.max_score else 1


def _progress(args: argparse.Namespace) -> int:
    from autograder.progress import run_progress

    return run_progress(args.dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfcourse", description="The Transformer from first principles.")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="what is installed, which devices are usable, what is missing")
    doctor.set_defaults(run=_doctor)
    demo = commands.add_parser("demo", help="train two small models on this machine and generate")
    demo.add_argument("--reversal-steps", type=int, default=600)
    demo.add_argument("--lm-steps", type=int, default=600)
    demo.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    demo.set_defaults(run=_demo)
    check = commands.add_parser("check", help="run a notebook and score it as the instructor will (hidden cases aside)")
    check.add_argument("notebook")
    check.add_argument("--json", action="store_true", help="one JSON object with the per-exercise checks")
    check.set_defaults(run=_check)
    progress = commands.add_parser("progress", help="score your notebooks of all seven lessons")
    progress.add_argument("--dir", default="exercises", help="the folder holding <lesson>/<lesson>.ipynb")
    progress.set_defaults(run=_progress)
    register_runs(commands)
    register_course(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
