"""The sandbox started early (while the trusted side gets ready) is an ordinary sandbox, and close() stops it
even when called while it is still starting."""

from __future__ import annotations

from autograder.grading.early_sandbox import SandboxStart
from autograder.harness.confine import Limits
from tests.support.grading_course import ROOT

LIMITS = Limits(wall_seconds=60, seconds_per_call=20)


def test_a_sandbox_closed_while_starting_stops_once_started():
    start = SandboxStart(LIMITS, [str(ROOT / "solutions")])
    start.close()  # most likely before the zygote has said hello
    sandbox = start.sandbox()
    assert sandbox.isolation.describe()  # it did start, with the isolation it reports
    assert sandbox._process.wait(timeout=60) is not None  # and then stopped


def test_the_started_sandbox_keeps_its_limits():
    start = SandboxStart(LIMITS, [str(ROOT / "solutions")])
    try:
        assert start.sandbox().limits == LIMITS == start.limits
    finally:
        start.close()
