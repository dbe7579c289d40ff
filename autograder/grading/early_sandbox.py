"""The grading sandbox started in the background while the trusted side gets ready to grade.

The sandbox's zygote (:mod:`autograder.harness.zygote`) imports torch and sets up its
confinement before it can fork a submission's child: seconds. Meanwhile the trusted side
imports nbgrader and nbformat and prepares every check's cases with the reference, also
seconds. :class:`SandboxStart` starts the zygote as soon as the command knows its course, and
the pipeline waits for it only when it sends the first submission, so the two overlap. It is
the same :class:`~autograder.grading.sandbox.Sandbox`, with the same limits and hidden paths:
only the moment it starts changes.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from autograder.grading.sandbox import Sandbox
from autograder.harness.confine import Limits

# What the lessons' notebooks import (their plans' ``imports``), loaded once in the zygote; a
# notebook's other imports load in its own child.
PRELOAD = ("math", "numpy", "torch")


class SandboxStart:
    """A :class:`Sandbox` being started in a background thread; :meth:`sandbox` waits for it."""

    def __init__(self, limits: Limits, hidden: list[str], preload: tuple[str, ...] = PRELOAD):
        self.limits = limits
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-start")
        self._started: Future[Sandbox] = pool.submit(Sandbox, limits, hidden, preload)
        pool.shutdown(wait=False)

    def sandbox(self) -> Sandbox:
        """The started sandbox; :class:`~autograder.grading.sandbox.SandboxError` if it did not start."""
        return self._started.result()

    def close(self) -> None:
        """Stop the sandbox, now or as soon as it has started (it may still be starting)."""
        self._started.add_done_callback(_close)


def _close(started: Future[Sandbox]) -> None:
    if started.exception() is None:
        started.result().close()
