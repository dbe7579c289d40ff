"""Whether the grading extra (nbgrader and what it runs on) is installed, and the command that installs it."""

from __future__ import annotations

import importlib.util

GRADING_MODULES = ("nbgrader", "nbformat", "nbclient")
INSTALL_COMMAND = "bash scripts/setup.sh grading"  # or: pip install 'tfcourse[grading]'


class MissingExtraError(RuntimeError):
    """A module of the grading extra is not installed; the message says how to install it."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the module (or a broken parent package)
        return False


def require_grading_extra() -> None:
    """Raise :class:`MissingExtraError` naming the missing modules and the command that installs them."""
    missing = [module for module in GRADING_MODULES if not _installed(module)]
    if missing:
        raise MissingExtraError(
            f"class grading needs {', '.join(missing)}, which is not installed: run `{INSTALL_COMMAND}` in the "
            "tfcourse checkout (or `pip install 'tfcourse[grading]'`)")
