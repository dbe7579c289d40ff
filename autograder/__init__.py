"""The course's checking engine: ``check()`` for learners, and grading for instructors."""

from autograder.check import CheckResult, check

__all__ = ["CheckResult", "check"]
