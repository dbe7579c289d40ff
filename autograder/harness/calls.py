"""Calling the learner's code on one case's inputs, and what came of it.

Two callers use it: ``check()`` in a notebook (through :mod:`autograder.runner`), and the
sandboxed grading process (:mod:`autograder.harness.serve`). Each call gets its own copy of
the inputs and runs inside the forbidden-API tripwires; whatever the learner's code raises
becomes a :class:`~autograder.harness.mismatch.Mismatch` that says why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from autograder.harness.activations import recording
from autograder.harness.dropout import train_with_fixed_masks
from autograder.harness.errors import plain_words
from autograder.harness.forbidden import COURSE_PACKAGES, ForbiddenAPIUsed, forbidden_calls
from autograder.harness.inputs import changed_input
from autograder.harness.mismatch import Mismatch
from autograder.harness.origin import learner_place
from autograder.harness.weights import gradients_by_name, load_weights_by_name, track_inputs

MESSAGE_CHARS = 2000  # longest learner-made text (an exception message) sent back


def clone(value: Any) -> Any:
    """A deep copy of case inputs: each call gets its own, so code that changes its inputs in place
    changes nothing another call (or the reference) sees. Tensors are copied detached from autograd
    (a tensor passed twice is copied once, and stays one tensor)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    memo: dict[int, Any] = {}
    _detached_copies(value, memo)
    return copy.deepcopy(value, memo)


def _detached_copies(value: Any, memo: dict[int, Any]) -> None:
    """Put a detached copy of each tensor held in ``value``'s tuples, lists and dicts into ``memo``, the memo of
    :func:`copy.deepcopy` (which cannot copy a tensor that autograd tracks from another one)."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = value.detach().clone()
    elif isinstance(value, (tuple, list)):
        for item in value:
            _detached_copies(item, memo)
    elif isinstance(value, dict):
        for item in value.values():
            _detached_copies(item, memo)


@dataclass
class Produced:
    """What the learner's code gave for one case: its output, or why not.

    ``gradients`` are a module's parameters' and its inputs' gradients, or a function's inputs' when its exercise
    compares them (:func:`~autograder.harness.weights.gradients_by_name`); ``None`` when they could not be taken,
    ``gradient_error`` saying why. ``activations`` are a module's sub-modules' inputs and outputs in an eval-mode
    case, as plain data (:func:`~autograder.harness.activations.recording`)."""

    output: Any = None
    gradients: dict[str, torch.Tensor] | None = None
    failure: Mismatch | None = None
    gradient_error: str | None = None
    activations: list | None = None


def raised(error: BaseException) -> Mismatch:
    """The message for code that raised instead of returning: the error, the line of the learner's code where it
    arose (:func:`~autograder.harness.origin.learner_place`), and what it means in plain words
    (:func:`~autograder.harness.errors.plain_words`)."""
    if isinstance(error, NotImplementedError) and plain_words(error) is None:
        return Mismatch("raises", "not implemented yet: replace `raise NotImplementedError` with your solution.")
    if isinstance(error, ForbiddenAPIUsed):
        if error.api.split(".")[0] in COURSE_PACKAGES:
            return Mismatch("forbidden", f"your code uses {error.api}: the course's own packages are not "
                                         "available to graded code. Write the exercise yourself.")
        return Mismatch("forbidden", f"your code calls {error.api}, which this exercise asks you to write yourself.")
    place = learner_place(error)
    at = f" at {place}" if place else " (outside the lines of your code, where the check called it)"
    if isinstance(error, SystemExit):
        return Mismatch("raises", f"your code called sys.exit() (or raised SystemExit){at}; return a result instead.")
    head = f"your code raised {type(error).__name__}{at}"
    return Mismatch("raises", head + _described(error, MESSAGE_CHARS - len(head)))


def _described(error: BaseException, chars: int) -> str:
    """``": message."`` (only ``"."`` for an empty message), and what it means in plain words
    (:func:`~autograder.harness.errors.plain_words`), in ``chars`` characters at most: a long message is cut, the
    plain words kept."""
    explanation = plain_words(error)
    plain = f" In plain words: {explanation}" if explanation else ""
    message = str(error).strip()
    room = chars - len(plain) - 3
    if len(message) > room:
        message = message[:max(room - 3, 0)] + "..."
    ending = "" if message.endswith((".", "!", "?")) else "."
    return f": {message}{ending}{plain}" if message else f".{plain}"


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


def function_output(fn: Callable, args: tuple, kwargs: dict, forbidden: tuple[str, ...],
                    gradients: bool = False) -> Produced:
    """``fn(*args, **kwargs)`` for a function exercise; with ``gradients``, also the gradients of its floating-point
    inputs (:func:`~autograder.harness.weights.track_inputs`)."""
    if not gradients:
        output, failure = call_keeping_inputs(fn, args, kwargs, forbidden)
        return Produced(output, failure=failure)
    with torch.enable_grad():  # the notebook may have turned autograd off; the function itself must not
        args, kwargs, inputs = track_inputs(args, kwargs)
        output, failure = call_keeping_inputs(fn, args, kwargs, forbidden)
        return _with_gradients(None, output, inputs) if failure is None else Produced(failure=failure)


def _with_gradients(module: Any, output: Any, inputs: dict[str, torch.Tensor]) -> Produced:
    """``output`` with the gradients of :func:`~autograder.harness.weights.gradients_by_name`, or why they could
    not be taken (an output the judge rejects anyway, or autograd's error)."""
    try:
        return Produced(output, gradients_by_name(module, output, inputs))
    except Exception as error:  # the judge reports it only when the output itself is right
        name = type(error).__name__
        return Produced(output, gradient_error=name + _described(error, MESSAGE_CHARS - len(name)))


def module_output(cls: Callable, init: tuple, weights: dict[str, torch.Tensor], args: tuple, kwargs: dict,
                  device: torch.device, dtype: torch.dtype, forbidden: tuple[str, ...], training: bool = False,
                  seed: int = 0) -> Produced:
    """Build ``cls(*init)``, load ``weights`` by member name, run ``forward(*args, **kwargs)``,
    and take the gradients of :func:`~autograder.harness.weights.gradients_by_name`: of the parameters, and of
    the floating-point inputs.

    The module runs in eval mode, or with ``training`` in training mode with the dropout masks that
    ``seed`` fixes (:func:`~autograder.harness.dropout.train_with_fixed_masks`); in eval mode the sub-modules'
    inputs and outputs are recorded too (:func:`~autograder.harness.activations.recording`)."""
    module, failure = call_guarded(lambda: cls(*init), forbidden)
    if failure is None:
        module, failure = load_weights_by_name(module, weights, device, dtype)
    if failure is None and training:
        module, failure = call_guarded(lambda: train_with_fixed_masks(module, seed, device), forbidden)
    if failure:
        return Produced(failure=failure)
    with torch.enable_grad():  # the notebook may have turned autograd off; the module itself must not
        args, kwargs, inputs = track_inputs(args, kwargs)
        with recording(module, enabled=not training) as activations:
            output, failure = call_keeping_inputs(module, args, kwargs, forbidden)
        if failure:
            return Produced(failure=failure)
        return replace(_with_gradients(module, output, inputs), activations=activations or None)
