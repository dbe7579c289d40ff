"""The course's checking engine: ``check()`` for learners, and grading for instructors.

``from autograder import check`` loads the engine (and with it the reference it compares
against) on first use, so importing the package itself loads nothing: the grading sandbox
runs :mod:`autograder.harness` without ever holding the reference.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CheckResult", "check"]


def __getattr__(name: str) -> Any:
    """``check`` and ``CheckResult``, imported when first asked for."""
    if name == "check":
        from autograder.checker import check

        return check
    if name == "CheckResult":
        from autograder.scores import CheckResult

        return CheckResult
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
