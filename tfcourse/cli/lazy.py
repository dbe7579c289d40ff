"""A command's options added only when that command is asked for, so every command starts fast.

``tfcourse --help`` lists every command by name and help line; the options of ``train``,
``generate`` and ``experiment`` are made from the reference's settings (``RunConfig``,
``Decoding``, the experiments), whose modules import torch and matplotlib. A command
registered with ``arguments=`` adds its options the first time its own parser parses or
prints help, so only the command that runs pays for the imports its options need.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

Arguments = Callable[[argparse.ArgumentParser], None]


class LazyParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options are added by ``arguments(parser)`` on first use."""

    def __init__(self, *args: Any, arguments: Arguments | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def _complete(self) -> None:
        arguments, self._arguments = self._arguments, None
        if arguments is not None:
            arguments(self)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()
