"""Which sub-layer of a learner's module first goes wrong, in one sentence.

When a module's output is wrong, the reference's sub-module calls and the learner's, recorded
with forward hooks (:mod:`autograder.harness.activations`), are walked side by side in the
order the reference makes them, each sub-module matched by its attribute name. The walk stops
at the first step that is not as the reference's:

* a sub-module's *input* differs: what runs between the last right step and this call is
  wrong (the residual added to the normalised input, the norm in the wrong place, the wrong
  tensor passed on, a stack giving every layer its own input);
* its input is right but its *output* differs: the sub-module itself, or how it is called;
* the reference calls it and the learner never does (a final norm, an output projection);
* another sub-module gets, earlier, the input this one should get: the two are swapped.

Where it helps, the sentence says what the wrong tensor is and what it should be, found among
the reference's inputs and activations before that step, alone or as a sum of two ("the output
of `dropout` plus the output of `norm`, where it should be the input `x` plus the output of
`dropout`"). Values are compared with :func:`autograder.compare.compare`, each step with a
relative tolerance scaled from the case's output tolerance (:func:`relative_tolerance`).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch
from torch import nn

from autograder.compare import compare
from autograder.harness.activations import INPUT, OUTPUT, Step, steps_from_plain, tensors_of
from autograder.tolerance import SAFETY, Tolerance, eps_of

ROOT = ""  # the checked module itself, in a step
MARGIN = 4.0  # how much looser than the output's relative tolerance one step's comparison is
MAX_CANDIDATES = 48  # tensors tried, alone and in pairs, when saying what a wrong tensor is
ACTIVATION_HINT = " (is the activation applied?)"
STACK_HINT = "each layer must get the previous layer's output"


def relative_tolerance(tolerance: Any, expected: Any, dtype: torch.dtype) -> float:
    """One relative bound for the sub-modules' tensors: the loosest ``rtol + atol / max|expected|`` over the leaves
    of the output's tolerance, times :data:`MARGIN`; ``SAFETY * eps`` of ``dtype`` at least."""
    bounds = [SAFETY * eps_of(dtype) if dtype.is_floating_point else 0.0]
    for pair, leaf in _tolerance_leaves(tolerance, expected):
        size = float(leaf.detach().abs().max()) if leaf.numel() and leaf.is_floating_point() else 0.0
        bounds.append(pair[1] + (pair[0] / size if size > 0 else 0.0))
    return MARGIN * max(bounds)


def _tolerance_leaves(tolerance: Any, expected: Any) -> list[tuple[tuple[float, float], torch.Tensor]]:
    if isinstance(tolerance, list) and isinstance(expected, (tuple, list)):
        return [leaf for t, e in zip(tolerance, expected) for leaf in _tolerance_leaves(t, e)]
    if isinstance(tolerance, tuple) and len(tolerance) == 2 and isinstance(expected, torch.Tensor):
        return [(tolerance, expected)]
    return []


@dataclass
class _Walk:
    """The two call sequences of one case, and what is needed to compare and describe their tensors."""

    reference: nn.Module
    steps: list[Step]  # the reference's, between its input and its output
    theirs: dict[tuple[str, str], Step]  # the learner's, by (module, kind)
    order: list[str]  # the sub-modules the learner called, in the order its calls began
    relative: float
    sequence: list[Step]  # the learner's steps, in order

    def close(self, actual: Any, expected: torch.Tensor) -> bool:
        if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
            return False
        finite = expected[torch.isfinite(expected)] if expected.is_floating_point() else expected[:0]
        size = float(finite.abs().max()) if finite.numel() else 0.0
        tolerance = Tolerance(self.relative * size + torch.finfo(torch.float64).tiny, self.relative)
        try:
            return compare(actual, expected, tolerance) is None
        except Exception:  # tensors that cannot even be compared are not close
            return False

    def first_wrong_key(self, expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> str | None:
        keys = list(expected) + [key for key in actual if key not in expected]
        return next((key for key in keys if key not in expected or key not in actual
                     or not self.close(actual[key], expected[key])), None)


def where_it_goes_wrong(reference: nn.Module, expected_steps: list[Step] | None, actual: Any,
                        inputs: dict[str, torch.Tensor], expected_output: Any, actual_output: Any,
                        relative: float, swaps_only: bool = False) -> str:
    """The sentence that says where the learner's module first departs from ``reference``; ``""`` when that
    cannot be told. With ``swaps_only`` (the output is right, its gradients are not) only two sub-modules swapped
    are told: two LayerNorms fresh from their constructor compute the same output, not the same gradients. ``expected_steps`` are the reference's recorded steps, ``actual`` the learner's as plain data
    (it may come from the sandbox: read with :func:`~autograder.harness.activations.steps_from_plain`),
    ``inputs`` the case's input tensors by parameter name, ``relative`` the relative tolerance of one step
    (:func:`relative_tolerance`)."""
    theirs = steps_from_plain(actual)
    if not expected_steps or not theirs:
        return ""
    expected_steps, theirs = _named_arguments(reference, expected_steps), _named_arguments(reference, theirs)
    steps = [Step(ROOT, INPUT, inputs), *expected_steps, Step(ROOT, OUTPUT, tensors_of(expected_output))]
    by_key = {(s.module, s.kind): s for s in theirs}
    by_key[(ROOT, INPUT)], by_key[(ROOT, OUTPUT)] = steps[0], Step(ROOT, OUTPUT, tensors_of(actual_output))
    walk = _Walk(reference, steps, by_key, [s.module for s in theirs if s.kind == INPUT], relative, theirs)
    return _first_difference(walk, swaps_only)


def _named_arguments(reference: nn.Module, steps: list[Step]) -> list[Step]:
    """``steps`` with each input's positions named as the reference's sub-module names its parameters, so that
    ``layer(x, mask)`` and ``layer(x, mask=mask)`` record the same call."""
    named = []
    for step in steps:
        names = _parameter_names(_submodule(reference, step.module)) if step.kind == INPUT and step.tensors else []
        tensors = {(names[int(key)] if key.isdigit() and int(key) < len(names) else key): value
                   for key, value in step.tensors.items()} if names else step.tensors
        named.append(Step(step.module, step.kind, tensors))
    return named


def _first_difference(walk: _Walk, swaps_only: bool) -> str:
    right = 0  # the index of the last step found right
    for index, step in enumerate(walk.steps[1:], start=1):
        mine = walk.theirs.get((step.module, step.kind))
        if step.tensors is None or (mine is not None and mine.tensors is None):
            continue  # too large to have been kept: neither right nor wrong
        if mine is None:
            if _missing_is_harmless(walk, step):
                continue
            swap = _swapped(walk, index)
            if swap or not swaps_only:
                return swap or _never_called(walk, index)
            continue
        wrong = walk.first_wrong_key(step.tensors, mine.tensors)
        if wrong is None:
            right = index
            continue
        swap = _swapped(walk, index)
        if swap or not swaps_only:
            return swap or _wrong_step(walk, right, index, wrong)
    return ""


def _missing_is_harmless(walk: _Walk, step: Step) -> bool:
    """Whether a step the learner never reached says nothing by itself: the end of a call whose start is already
    told, a container whose parts the learner calls directly, or a sub-module that returns its input (dropout in
    eval mode, ``nn.Identity``)."""
    if step.kind == OUTPUT:
        return True
    if any(name.startswith(step.module + ".") for name in walk.order):
        return True
    output = next((s for s in walk.steps if s.module == step.module and s.kind == OUTPUT), None)
    if output is None or not output.tensors or not step.tensors:
        return False
    first = next(iter(step.tensors.values()))
    return walk.close(output.tensors.get("0"), first)


def _swapped(walk: _Walk, index: int) -> str:
    """The sentence for a sub-module of the same class that the learner calls before this one (whose input is
    wrong, or which it never calls), on the input this one should get."""
    step = walk.steps[index]
    if step.kind != INPUT or step.module == ROOT or not step.tensors:
        return ""
    starts = [s.module for s in walk.steps if s.kind == INPUT]
    rank = {name: i for i, name in enumerate(starts)}
    mine = walk.order.index(step.module) if step.module in walk.order else len(walk.order)
    for other in walk.order[:mine]:
        theirs = walk.theirs.get((other, INPUT))
        if rank.get(other, -1) <= rank[step.module] or other.startswith(step.module + ".") or \
                theirs is None or theirs.tensors is None:
            continue
        same_kind = type(_submodule(walk.reference, other)) is type(_submodule(walk.reference, step.module))
        if same_kind and theirs.tensors and walk.close(_main(theirs.tensors), _main(step.tensors)):
            return (f"`{other}` is called where the reference calls `{step.module}`, on the input the reference "
                    f"gives `{step.module}`: are `{other}` and `{step.module}` swapped, or one used for the other?")
    return ""


def _main(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first tensor a call receives or returns."""
    return next(iter(tensors.values()))


def _never_called(walk: _Walk, index: int) -> str:
    step = walk.steps[index]
    kind = type(walk.reference.get_submodule(step.module)).__name__ if _has(walk.reference, step.module) else ""
    named = f"`{step.module}`" + (f" ({kind})" if kind else "")
    first = next(iter(step.tensors.values()), None) if step.tensors else None
    output = walk.theirs[(ROOT, OUTPUT)].tensors or {}
    if first is not None and any(walk.close(t, first) for t in output.values()):
        return f"{named} is never called: your output is what the reference passes to it; apply it last."
    source = _describe(walk, first, index) if first is not None else ""
    return f"{named} is never called" + (f": the reference applies it to {source}." if source else ".")


def _wrong_step(walk: _Walk, right: int, index: int, key: str) -> str:
    previous, step = walk.steps[right], walk.steps[index]
    mine = walk.theirs[(step.module, step.kind)]
    detail = _detail(walk, index, key, mine.tensors.get(key))
    if step.kind == INPUT:
        stack = _stack_sentence(walk, index, previous, mine.tensors.get(key))
        if stack:
            return stack
        unchanged = previous.kind == OUTPUT and walk.close(mine.tensors.get(key), _main(previous.tensors))
        activation = _activation_sentence(walk, previous, step, mine.tensors.get(key)) if not unchanged else ""
        if activation:
            return activation
        where = _between(walk, previous, step.module, unchanged)
        return f"{_context(previous)}the input of `{step.module}` is not{detail}: {where}."
    subject = "the module's output" if step.module == ROOT else f"the output of `{step.module}`"
    if previous.module == step.module and previous.kind == INPUT:
        return (f"The input of `{step.module}` is right but its output is not{detail}: look at `{step.module}` "
                "itself, or at the other arguments it is given (masks, options).")
    owner = "forward" if step.module == ROOT else f"`{step.module}`"
    after = f"after it calls `{previous.module}`" if previous.module != ROOT else "with its input"
    return f"{_context(previous)}{subject} is not{detail}: look at what {owner} does {after}."


ACTIVATIONS = {"ReLU": torch.relu, "GELU": nn.functional.gelu,
               "GELU (tanh approximation)": lambda x: nn.functional.gelu(x, approximate="tanh"),
               "SiLU": nn.functional.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def _activation_sentence(walk: _Walk, previous: Step, step: Step, actual: Any) -> str:
    """When ``step``'s wrong input is one activation of ``previous``'s output where the reference's is another:
    the sentence that names both (GELU where the exercise asks for ReLU)."""
    if previous.kind != OUTPUT or not isinstance(actual, torch.Tensor):
        return ""
    source, expected = _main(previous.tensors), _main(step.tensors)
    named = {name: function(source) for name, function in ACTIVATIONS.items()}
    theirs = next((name for name, value in named.items() if walk.close(actual, value)), None)
    ours = next((name for name, value in named.items() if walk.close(expected, value)), None)
    if theirs is None or ours is None or theirs == ours:
        return ""
    return (f"The output of `{previous.module}` is right; the input of `{step.module}` is {theirs} of it, where it "
            f"should be {ours} of it: use the activation function the exercise asks for.")


def _context(previous: Step) -> str:
    if previous.module == ROOT:
        return "The module's input is right; "
    return f"The {previous.kind} of `{previous.module}` is right; "


def _between(walk: _Walk, previous: Step, module: str, unchanged: bool) -> str:
    """Where to look when ``module`` gets a wrong input right after ``previous`` went right; ``unchanged``: the
    input is ``previous``'s output as it is (after a linear layer, an activation left out)."""
    if previous.kind == OUTPUT:
        linear = isinstance(_submodule(walk.reference, previous.module), nn.Linear)
        hint = ACTIVATION_HINT if unchanged and linear else ""
        return f"look at the step between `{previous.module}` and `{module}`{hint}"
    owner = "forward" if previous.module == ROOT else f"`{previous.module}`"
    return f"look at what {owner} does before it calls `{module}`"


def _stack_sentence(walk: _Walk, index: int, previous: Step, actual: Any) -> str:
    """The sentence for a layer of a stack (``layers.1``) that does not get the previous layer's output."""
    module = walk.steps[index].module
    match = re.fullmatch(r"(.+)\.(\d+)", module)
    if not match or int(match[2]) == 0 or previous.kind != OUTPUT or \
            previous.module != f"{match[1]}.{int(match[2]) - 1}":
        return ""
    is_ = _describe(walk, actual, index, theirs=True) if isinstance(actual, torch.Tensor) else ""
    return (f"The input of `{module}` is not the output of `{previous.module}`" + (f" (it is {is_})" if is_ else "")
            + f": {STACK_HINT}.")


def _detail(walk: _Walk, index: int, key: str, actual: Any) -> str:
    """" (its `key`: it is X, where it should be Y)", as far as it can be told; ``""`` when nothing can."""
    step = walk.steps[index]
    expected = step.tensors.get(key)
    argument = _argument(walk, step, key)
    if expected is None:
        return f" ({argument} is given, which the reference does not pass)"
    if actual is None:
        return f" ({argument} is not given)"
    is_, should = _describe(walk, actual, index, theirs=True), _describe(walk, expected, index)
    parts = ([f"it is {is_}"] if is_ else []) + ([f"where it should be {should}"] if should and should != is_ else [])
    named = [argument] if len(step.tensors) > 1 else []
    if not parts:
        return f" ({argument})" if named else ""
    return " (" + ": ".join([*named, ", ".join(parts)]) + ")"


def _argument(walk: _Walk, step: Step, key: str) -> str:
    """A tensor of a step in words: "its `mask`", "its argument 2", "item 1 of its output"."""
    if step.kind == OUTPUT:
        return "its output" if key == "0" else f"item {key} of its output"
    if not key.isdigit():
        return f"its `{key}`"
    names = _parameter_names(_submodule(walk.reference, step.module)) if step.module != ROOT else []
    return f"its `{names[int(key)]}`" if int(key) < len(names) else f"its argument {int(key) + 1}"


def _parameter_names(module: nn.Module | None) -> list[str]:
    if module is None:
        return []
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _describe(walk: _Walk, tensor: torch.Tensor, index: int, theirs: bool = False) -> str:
    """What ``tensor`` is among the reference's tensors before step ``index`` (and, for a tensor of the learner's
    at that step, ``theirs``, the outputs of the sub-modules the learner called before it): one of them, or the
    sum of two; ``""`` when none."""
    candidates = _candidates(walk, index) + (_their_candidates(walk, walk.steps[index]) if theirs else [])
    candidates = [(text, t) for text, t in candidates
                  if t.shape == tensor.shape and t.dtype == tensor.dtype][:MAX_CANDIDATES]
    for text, candidate in candidates:
        if walk.close(tensor, candidate):
            return text
    if not tensor.is_floating_point():
        return ""
    for (first, a), (second, b) in combinations(candidates, 2):
        if a.device == b.device and walk.close(tensor, a + b):
            return f"{first} plus {second}"
    return ""


def _candidates(walk: _Walk, index: int) -> list[tuple[str, torch.Tensor]]:
    """The reference's tensors before step ``index``, each in words: the module's inputs first, then the
    sub-modules' outputs and inputs, the latest first."""
    inputs = [(f"the input `{key}`", t) for key, t in (walk.steps[0].tensors or {}).items()]
    earlier = [s for s in walk.steps[1:index] if s.tensors][::-1]
    outputs = [(_phrase(walk, s, key), t) for s in earlier if s.kind == OUTPUT for key, t in s.tensors.items()]
    arguments = [(_phrase(walk, s, key), t) for s in earlier if s.kind == INPUT for key, t in s.tensors.items()]
    return inputs + outputs + arguments


def _their_candidates(walk: _Walk, step: Step) -> list[tuple[str, torch.Tensor]]:
    """The outputs of the sub-modules the learner called before its ``step`` (all of them when it has none), the
    latest first, each in words."""
    keys = [(s.module, s.kind) for s in walk.sequence]
    end = keys.index((step.module, step.kind)) if (step.module, step.kind) in keys else len(keys)
    earlier = [s for s in walk.sequence[:end] if s.kind == OUTPUT and s.tensors][::-1]
    return [(_phrase(walk, s, key), t) for s in earlier for key, t in s.tensors.items()]


def _phrase(walk: _Walk, step: Step, key: str) -> str:
    if len(step.tensors) == 1:
        return f"the {step.kind} of `{step.module}`"
    return f"{_argument(walk, step, key).replace('its', 'the', 1)} of `{step.module}`"


def _submodule(module: nn.Module, name: str) -> nn.Module | None:
    return module.get_submodule(name) if _has(module, name) else None


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True
