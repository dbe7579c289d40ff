"""The error a command raises for a problem its user can fix."""

from __future__ import annotations

import argparse
from typing import Callable


class CommandError(Exception):
    """A command cannot do what was asked; the message says what went wrong and how to fix it."""


Command = Callable[[argparse.Namespace], int]


def command(parser: argparse.ArgumentParser, run: Command, *errors: type[Exception]) -> None:
    """Make ``parser`` run ``run``; ``errors`` are the exception types it raises for the user to fix."""
    parser.set_defaults(run=run, errors=errors)
