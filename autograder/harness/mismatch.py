"""Why a learner's output is wrong: the stage that failed and a readable explanation.

A record of plain data, shared by the judging side and the grading sandbox (which
reports code that raised, or called a forbidden API, as a mismatch of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("raises", "forbidden", "timeout", "input", "type", "shape", "dtype", "device", "nan", "values",
          "gradients")


@dataclass(frozen=True)
class Mismatch:
    """Why an output is wrong: the stage that failed and a readable explanation."""

    stage: str
    message: str
