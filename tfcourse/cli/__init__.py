"""The ``tfcourse`` command line: every command, and the one place that reports their errors.

Each module registers a group of commands on the parser; a command is a function
``run(args) -> exit status`` that raises :class:`CommandError` (or one of the error types it
declares with ``errors=``) for a problem the user can fix. :func:`main` prints such an
error as one line, ``error: ...``, and exits with status 2. This package is the only part
of ``tfcourse`` that imports ``autograder``.
"""

from __future__ import annotations

import argparse
import sys

from tfcourse.cli import basics, class_records, course, learner, runs
from tfcourse.cli.errors import CommandError

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfcourse", description="The Transformer from first principles.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (basics, learner, runs, course, class_records):
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names; its exit status (2 for a problem the message says how to fix)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, *args.errors) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR


__all__ = ["CommandError", "build_parser", "main"]
