"""Calling the learner's code on one case's inputs, and what came of it.

Two callers use it: ``check()`` in a notebook (through :mod:`autograder.runner`), and the
sandboxed grading process (:mod:`autograder.harness.serve`). Each call gets its own copy of
the inputs and runs inside the forbidden-API tripwires; whatever the learner's code raises
becomes a :class:`~autograder.harness.mismatch.Mismatch` that says why.
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from autograder.harness.dropout import train_with_fixed_masks
from autograder.harness.forbidden import COURSE_PACKAGES, ForbiddenAPIUsed, forbidden_calls
from autograder.harness.inputs import changed_input
from autograder.harness.mismatch import Mismatch
from autograder.harness.weights import gradients_by_name, load_weights_by_name

MESSAGE_CHARS = 2000  # longest learner-made text (an exception message) sent back


def clone(value: Any) -> Any:
    """A deep copy of case inputs: each call gets its own, so code that changes its inputs in place
    changes nothing another call (or the reference) sees."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


@dataclass
class Produced:
    """What the learner's code gave for one case: its output (and a module's gradients), or why not."""

    output: Any = None
    gradients: dict[str, torch.Tensor] | None = None
    failure: Mismatch | None = None


def raised(error: BaseException) -> Mismatch:
    """The message for code that raised instead of returning."""
    if isinstance(error, NotImplementedError):
        return Mismatch("raises", "not implemented yet: replace `raise NotImplementedError` with your solution.")
    if isinstance(error, ForbiddenAPIUsed):
        if error.api.split(".")[0] in COURSE_PACKAGES:
            return Mismatch("forbidden", f"your code uses {error.api}: the course's own packages are not "
                                         "available to graded code. Write the exercise yourself.")
        return Mismatch("forbidden", f"your code calls {error.api}, which this exercise asks you to write yourself.")
    if isinstance(error, SystemExit):
        return Mismatch("raises", "your code called sys.exit() (or raised SystemExit); return a result instead.")
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (line {frames[-1].lineno}: `{frames[-1].line}`)" if frames and frames[-1].line else ""
    return Mismatch("raises", f"your code raised {type(error).__name__}: {error}{where}."[:MESSAGE_CHARS])


def call_guarded(fn: Callable[[], Any], forbidden: tuple[str, ...]) -> tuple[Any, Mismatch | None]:
    """``fn()`` with the forbidden APIs' tripwires set: its result, or the mismatch that explains its failure."""
    try:
        with forbidden_calls(forbidden) as called:
            result = fn()
    except Exception as error:  # the learner's code may raise anything; it becomes feedback
        return None, raised(error)
    if called:
        return None, raised(ForbiddenAPIUsed(called[0]))
    return result, None


def call_keeping_inputs(fn: Callable, args: tuple, kwargs: dict,
                        forbidden: tuple[str, ...]) -> tuple[Any, Mismatch | None]:
    """:func:`call_guarded` of ``fn(*args, **kwargs)``, failing when ``fn`` changes an input in place."""
    before = clone((args, kwargs))
    output, failure = call_guarded(lambda: fn(*args, **kwargs), forbidden)
    changed = None if failure else changed_input(getattr(fn, "forward", fn), before, args, kwargs)
    if changed:
        failure = Mismatch("input", f"your code changed its input {changed} in place, so the caller's tensor is not "
                                    "what it passed in. Work on a new tensor: logits.masked_fill(...) rather than "
                                    "masked_fill_, x = x + y rather than x += y, or clone() first.")
    return output, failure


def function_output(fn: Callable, args: tuple, kwargs: dict, forbidden: tuple[str, ...]) -> Produced:
    """``fn(*args, **kwargs)`` for a function exercise."""
    output, failure = call_keeping_inputs(fn, args, kwargs, forbidden)
    return Produced(output, failure=failure)


def module_output(cls: Callable, init: tuple, weights: dict[str, torch.Tensor], args: tuple, kwargs: dict,
                  device: torch.device, dtype: torch.dtype, forbidden: tuple[str, ...], training: bool = False,
                  seed: int = 0) -> Produced:
    """Build ``cls(*init)``, load ``weights`` by member name, run ``forward(*args, **kwargs)``,
    and take the gradients of :func:`~autograder.harness.weights.gradients_by_name`.

    The module runs in eval mode, or with ``training`` in training mode with the dropout masks that
    ``seed`` fixes (:func:`~autograder.harness.dropout.train_with_fixed_masks`)."""
    module, failure = call_guarded(lambda: cls(*init), forbidden)
    if failure is None:
        module, failure = load_weights_by_name(module, weights, device, dtype)
    if failure is None and training:
        module, failure = call_guarded(lambda: train_with_fixed_masks(module, seed, device), forbidden)
    if failure is None:
        output, failure = call_keeping_inputs(module, args, kwargs, forbidden)
    if failure:
        return Produced(failure=failure)
    try:
        gradients = gradients_by_name(module, output)
    except Exception:  # an output the judge will reject anyway; its report says why
        gradients = None
    return Produced(output, gradients)
