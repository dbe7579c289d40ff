"""Each lesson page states how long it takes ("*About N minutes of reading, M minutes of
exercises.*"), and the figures stay within :data:`TOLERANCE` of what the page and its
exercises measure (``tests/support/reading_time.py``), so they stay true as pages change."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.registry import LESSONS, lesson_exercises
from tests.support.reading_time import reading_minutes, stated_estimate

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.25


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_lesson_states_true_estimates(lesson: str):
    text = (ROOT / "book" / f"{lesson}.md").read_text(encoding="utf-8")
    stated = stated_estimate(text)
    assert stated is not None, f"book/{lesson}.md states no '*About N minutes of reading, M minutes of exercises.*'"
    measured = (reading_minutes(text), sum(exercise.minutes for exercise in lesson_exercises(lesson)))
    for kind, said, true in zip(("reading", "exercises"), stated, measured):
        assert abs(said - true) <= TOLERANCE * true, f"book/{lesson}.md: {said} minutes of {kind}, measured {true}"
