"""The declarative record that specifies one exercise.

An :class:`Exercise` says what the learner writes (a function or a module class), what
it must agree with (the ``tfcourse`` reference), on which inputs (seeded case
generators, a visible set and a hidden set), how closely (a tolerance each case derives
from the reference's numerics, :mod:`autograder.tolerance`), what it may not call, which
common mistakes to recognise, and the hint ladder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

@dataclass(frozen=True)
class Case:
    """One call of the learner's code: ``fn(*args, **kwargs)``.

    For a module exercise, ``init`` holds the constructor's arguments and ``args`` /
    ``kwargs`` those of ``forward``; the module runs in eval mode, or with ``training`` in
    training mode, its dropout masks fixed by ``seed`` (:mod:`autograder.harness.dropout`).
    ``rule``, when set, is the requirement stated in the notebook that this case enforces,
    in plain words: a failure of the case quotes it. ``gradients=False`` compares only the
    output of this case where the exercise compares gradients too (the reason is written
    beside the case).
    """

    label: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: tuple = ()
    training: bool = False
    seed: int = 0
    rule: str = ""
    gradients: bool = True


DROPOUT_IN_EVAL = ("in eval mode (module.eval()) dropout does nothing, whatever its probability: use nn.Dropout, "
                   "which follows the module's mode, not a dropout that always drops.")
DROPOUT_IN_TRAINING = ("in training mode (module.train(), dropout active) your output must equal the course's: apply "
                       "dropout with nn.Dropout exactly where the notebook says, and only there. The check seeds the "
                       "random generator as for the course's module, so the same places draw the same masks.")


@dataclass(frozen=True)
class CaseContext:
    """Where and how to make a case's inputs: a seeded CPU generator, a device and a dtype."""

    generator: torch.Generator
    device: torch.device
    dtype: torch.dtype

    def randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        """Standard-normal tensor (times ``scale``) drawn on the CPU, then moved to the device."""
        return (torch.randn(*shape, generator=self.generator, dtype=self.dtype) * scale).to(self.device)

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.generator).to(self.device)

    def rand_mask(self, *shape: int, keep: float = 0.6) -> torch.Tensor:
        """Boolean mask with about ``keep`` of the entries True."""
        return (torch.rand(*shape, generator=self.generator) < keep).to(self.device)


def with_dropout(case: Case, ctx: CaseContext) -> list[Case]:
    """``case``, whose ``init`` sets a dropout probability above 0, in eval mode (where dropout must change
    nothing) and in training mode with masks fixed by a seed drawn from ``ctx`` (where it must drop what the
    reference drops)."""
    seed = int(ctx.randint(0, 2**31 - 1, 1).item())
    return [replace(case, label=f"{case.label}, eval mode", rule=DROPOUT_IN_EVAL),
            replace(case, label=f"{case.label}, training mode", training=True, seed=seed, rule=DROPOUT_IN_TRAINING)]


@dataclass(frozen=True)
class Mistake:
    """A common wrong version of the exercise, recognised when the learner's output matches it.

    ``variant`` is called like the reference (for a module: with the reference module as
    first argument, then ``forward``'s arguments). ``explanation`` is the plain-words
    sentence shown to the learner.
    """

    name: str
    variant: Callable[..., Any]
    explanation: str


@dataclass(frozen=True)
class Exercise:
    """Everything the checker needs to grade one exercise.

    ``make_cases(ctx, hidden)`` returns the visible cases (``hidden=False``) or the hidden
    ones. ``forbidden`` lists dotted names of APIs the learner's code may not call while
    being checked (for example ``"torch.softmax"``); the ``tfcourse`` and ``autograder``
    packages are always forbidden. ``kind`` is ``"function"`` or ``"module"``.

    ``points`` (what its graded check cell earns), ``difficulty`` (1 to 3 stars) and
    ``minutes`` (the time it takes, roughly) are the one source of the header line of its
    task cell and of nbgrader's points of its check cell in the solutions notebook:
    ``python -m autograder.headers`` writes them there (:mod:`autograder.headers`).

    ``tolerances`` (``(atol, rtol)`` per dtype) replaces the tolerance each case derives from
    the reference's numerics; an exercise sets it only with the reason written in
    docs/grading.md ("How close is close enough").

    A module exercise compares the gradients of the module's parameters and of its floating-point
    inputs with the reference's; ``gradients`` makes a function exercise compare its floating-point
    inputs' gradients too. It is set for the functions a model trains through, whose reference is
    differentiable on every case: an output that is right while part of its computation is cut off
    from autograd (``.detach()``, ``.data``, ``torch.no_grad()``, a NumPy round trip) then fails.
    """

    name: str
    lesson: str
    reference: Callable[..., Any]
    make_cases: Callable[[CaseContext, bool], list[Case]]
    points: int
    difficulty: int
    minutes: int
    kind: str = "function"
    forbidden: tuple[str, ...] = ()
    mistakes: tuple[Mistake, ...] = ()
    hints: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = (torch.float64, torch.float32)
    tolerances: dict[torch.dtype, tuple[float, float]] | None = None
    numpy: bool = False
    gradients: bool = False
