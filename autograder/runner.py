"""Running an exercise's cases against the learner's code, on every dtype and device.

Checking is split in three steps, so that grading can run the middle one in a sandbox:

1. :func:`prepare_cases` (trusted): each case's inputs, and the reference's output on its
   own copy of them (for a module, also the reference's weights and the gradients of its
   parameters and inputs; for a function whose exercise compares gradients, its inputs'),
   with the tolerance derived from the reference's numerics on them (:mod:`autograder.tolerance`);
2. producing the learner's output on another copy, inside the forbidden-API tripwires
   (:mod:`autograder.harness.calls`; :meth:`ExerciseRun.run` does it in this process);
3. :func:`judge` (trusted): the staged comparison; when the values are wrong, the
   exercise's known mistakes are evaluated on the same inputs and named when one matches.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from autograder.compare import Mismatch, compare
from autograder.diagnosis import Call, relate
from autograder.exercise import Case, CaseContext, Exercise, Mistake
from autograder.harness.activations import Step, recording, steps_from_plain
from autograder.harness.calls import Produced, clone, function_output, module_output
from autograder.harness.dropout import train_with_fixed_masks
from autograder.harness.weights import INPUT, gradients_by_name, track_inputs
from autograder.sublayers import relative_tolerance, where_it_goes_wrong
from autograder.tolerance import convert, derive, eps_of, scaled

# Failures where the learner's output exists and can be compared with a known mistake's.
DIAGNOSABLE_STAGES = ("shape", "values", "nan")
DETACHED = ".detach(), .data, torch.no_grad(), .item(), a NumPy round trip"  # what cuts a gradient off


@dataclass(frozen=True)
class CaseOutcome:
    """The verdict on one case at one dtype and device; ``hidden`` marks the instructor's hidden cases,
    ``training`` a module case run in training mode, ``rule`` the stated requirement the case enforces, ``sublayer``
    which sub-module of a wrong module first goes wrong (:mod:`autograder.sublayers`)."""

    case: str
    device: str
    dtype: str
    mismatch: Mismatch | None = None
    matching_mistakes: tuple[str, ...] = ()
    hidden: bool = False
    training: bool = False
    rule: str = ""
    sublayer: str = ""
    relation: str = ""

    @property
    def passed(self) -> bool:
        return self.mismatch is None


@dataclass(frozen=True)
class PreparedCase:
    """A case ready to run and judge: the inputs the learner's code gets, and the reference's answers.

    For a module exercise ``reference`` is the reference module (its weights are what the
    learner's module receives). ``expected_gradients`` are the reference's gradients by name
    (:func:`~autograder.harness.weights.gradients_by_name`): a module's parameters', and the
    floating-point inputs' (``"input 0"`` for the first position, ``"input memory"`` for a keyword)
    of a module or of a function whose exercise compares them. ``tolerance`` and ``gradient_tolerance``
    are how close the output and the gradients must come (:func:`autograder.tolerance.derive`;
    ``None``: exactly, or the exercise's fixed ones). ``activations`` are the reference module's sub-modules'
    inputs and outputs in an eval-mode case (:mod:`autograder.harness.activations`).
    """

    case: Case
    context: CaseContext
    expected: Any
    hidden: bool = False
    reference: nn.Module | None = None
    expected_gradients: dict[str, torch.Tensor] | None = None
    tolerance: Any = None
    gradient_tolerance: Any = None
    activations: list[Step] | None = None

    def outcome(self, mismatch: Mismatch | None = None, matching_mistakes: tuple[str, ...] = (),
                sublayer: str = "") -> CaseOutcome:
        """The verdict on this case."""
        return CaseOutcome(self.case.label, str(self.context.device), str(self.context.dtype).replace("torch.", ""),
                           mismatch, matching_mistakes, self.hidden, self.case.training, self.case.rule, sublayer)


def available_devices() -> list[torch.device]:
    """CPU, and CUDA when a usable GPU is present."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def _as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_as_numpy(v) for v in value)
    return value


def prepare_cases(exercise: Exercise, seed: int, hidden: bool, devices: list[torch.device]) -> list[PreparedCase]:
    """Every case of ``exercise`` (the visible set, or the hidden one) on each dtype and device, with the
    reference's answers. The same ``seed`` gives the same inputs and, for modules, the same weights."""
    prepared = []
    for device in devices if not exercise.numpy else [torch.device("cpu")]:
        for dtype in exercise.dtypes:
            context = CaseContext(torch.Generator().manual_seed(seed), device, dtype)
            for case in exercise.make_cases(context, hidden):
                prepared.append(_prepare(exercise, case, context, seed, hidden))
    return prepared


def input_names(exercise: Exercise) -> tuple[str, ...]:
    """The names of the positional parameters of the reference function, or of the reference module's ``forward``
    (without ``self``): what a failure calls the inputs at those positions."""
    fn = exercise.reference.forward if exercise.kind == "module" else exercise.reference
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read: the inputs are named by position
        return ()
    if exercise.kind == "module":
        parameters = parameters[1:]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters if p.kind in positional)


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    return value


def _prepare(exercise: Exercise, case: Case, context: CaseContext, seed: int, hidden: bool) -> PreparedCase:
    if exercise.kind != "module" and not exercise.gradients:
        if exercise.numpy:
            case = replace(case, args=_as_numpy(case.args))
        expected = exercise.reference(*clone(case.args), **clone(case.kwargs))
        tolerance = _tolerance(exercise, context, expected, lambda fn: exercise.reference(
            *convert(clone(case.args), fn), **convert(clone(case.kwargs), fn)))
        return PreparedCase(case, context, expected, hidden, tolerance=tolerance)
    reference = None
    if exercise.kind == "module":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            reference = exercise.reference(*case.init).to(context.device, context.dtype).eval()
        if case.training:
            train_with_fixed_masks(reference, case.seed, context.device)

    def answer(fn=None):
        """The output and the gradients of the reference on the case's inputs (and weights), each passed through
        ``fn`` when it is given."""
        module, (args, kwargs) = reference, clone((case.args, case.kwargs))
        if fn is not None:
            module, (args, kwargs) = convert(module, fn), convert((args, kwargs), fn)
        with torch.enable_grad():
            args, kwargs, inputs = track_inputs(args, kwargs)
            output = (module or exercise.reference)(*args, **kwargs)
            return _detached(output), gradients_by_name(module, output, inputs)
    expected, gradients = answer()
    tolerance, gradient_tolerance = _tolerance(exercise, context, (expected, gradients), answer, ((1,),)) \
        or (None, None)
    activations = _activations(reference, case) if reference is not None and not case.training else None
    return PreparedCase(case, context, expected, hidden, reference, gradients, tolerance, gradient_tolerance,
                        activations)


def _activations(reference: nn.Module, case: Case) -> list[Step] | None:
    """The reference's sub-modules' inputs and outputs on the case (:mod:`autograder.harness.activations`)."""
    args, kwargs = clone((case.args, case.kwargs))
    with torch.no_grad(), recording(reference) as steps:
        reference(*args, **kwargs)
    return steps_from_plain(steps)


def _tolerance(exercise: Exercise, context: CaseContext, expected: Any, answer, gradients: tuple = ()) -> Any:
    """The exercise's fixed tolerance for this dtype where it has one, else the one derived from the
    reference's numerics on this case (where gradients are compared: one for the output, one for them)."""
    fixed = (exercise.tolerances or {}).get(context.dtype)
    if fixed is not None:
        return (fixed, fixed) if exercise.kind == "module" or exercise.gradients else fixed
    return derive(answer, expected, context.dtype, gradients)


def produce(exercise: Exercise, learner: Any, prepared: PreparedCase) -> Produced:
    """The learner's output on a copy of the case's inputs, computed in this process."""
    case, context = prepared.case, prepared.context
    args, kwargs = clone((case.args, case.kwargs))
    if exercise.kind == "module":
        weights = {name: tensor.detach().clone() for name, tensor in prepared.reference.state_dict().items()}
        return module_output(learner, case.init, weights, args, kwargs, context.device, context.dtype,
                             exercise.forbidden, case.training, case.seed)
    return function_output(learner, args, kwargs, exercise.forbidden, exercise.gradients)


def judge(exercise: Exercise, prepared: PreparedCase, produced: Produced) -> CaseOutcome:
    """The verdict on the learner's output for one case; when the values are wrong, the known
    mistakes whose output on this case equals the learner's."""
    if produced.failure:
        return prepared.outcome(produced.failure)
    tolerance = prepared.tolerance
    mismatch = _with_precision_note(prepared, produced.output,
                                    compare(produced.output, prepared.expected, tolerance))
    if mismatch and mismatch.stage in DIAGNOSABLE_STAGES:
        return prepared.outcome(mismatch, _matching_mistakes(exercise, prepared, produced.output),
                                _sublayer(exercise, prepared, produced))
    if mismatch:
        return prepared.outcome(mismatch)
    if prepared.expected_gradients is not None and prepared.case.gradients:
        mismatch = _gradient_mismatch(exercise, prepared, produced)
        return prepared.outcome(mismatch, sublayer=_sublayer(exercise, prepared, produced, swaps_only=True)
                                if mismatch else "")
    return prepared.outcome()


def _sublayer(exercise: Exercise, prepared: PreparedCase, produced: Produced, swaps_only: bool = False) -> str:
    """Which sub-module of a wrong module first goes wrong (:func:`autograder.sublayers.where_it_goes_wrong`)."""
    if prepared.activations is None or produced.activations is None:
        return ""
    case, names = prepared.case, input_names(exercise)
    inputs = {(names[i] if i < len(names) else f"argument {i + 1}"): value for i, value in enumerate(case.args)}
    inputs = {name: value for name, value in {**inputs, **case.kwargs}.items() if isinstance(value, torch.Tensor)}
    relative = relative_tolerance(prepared.tolerance, prepared.expected, prepared.context.dtype)
    return where_it_goes_wrong(prepared.reference, prepared.activations, produced.activations, inputs,
                               prepared.expected, produced.output, relative, swaps_only)


def _gradient_mismatch(exercise: Exercise, prepared: PreparedCase, produced: Produced) -> Mismatch | None:
    """How the learner's gradients differ from the reference's (a module's parameters' first, then each input's),
    once the output is right."""
    if produced.gradients is None:
        why = f" ({produced.gradient_error})" if produced.gradient_error else ""
        return Mismatch("gradients", f"the gradients could not be taken through your {exercise.kind}'s output{why}: "
                                     "keep the computation in torch operations, and do not change in place a tensor "
                                     "that autograd still needs.")
    what = "module's forward" if exercise.kind == "module" else "function"
    expected, tolerance = prepared.expected_gradients, prepared.gradient_tolerance
    parameters = {name: value for name, value in expected.items() if not name.startswith(INPUT)}
    if parameters:
        theirs = {name: value for name, value in produced.gradients.items()  # decoded data: any keys
                  if not (isinstance(name, str) and name.startswith(INPUT))}
        mismatch = compare(theirs, parameters, tolerance, where="the gradients")
        if mismatch:
            return replace(mismatch, stage="gradients")
    names = input_names(exercise)
    inputs = [name for name in expected if name.startswith(INPUT)]
    # the inputs no gradient reaches first: an input ignored for another of equal value (the keys used as the
    # values, in self-attention) is named, not the other whose gradient it doubled
    for name in sorted(inputs, key=lambda name: name in produced.gradients):
        mismatch = _input_gradient_mismatch(produced.gradients.get(name), expected[name],
                                             tolerance[name] if isinstance(tolerance, dict) else tolerance,
                                             _named(name, names), what)
        if mismatch and name not in produced.gradients:
            return _with_stand_ins(mismatch, name, prepared.case, names)
        if mismatch:
            return mismatch
    return None


def _with_stand_ins(mismatch: Mismatch, key: str, case: Case, names: tuple[str, ...]) -> Mismatch:
    """``mismatch`` of an input no gradient reaches, naming the inputs of equal value in this case that may be
    used in its place (self-attention passes one tensor as query, key and value)."""
    inputs = {f"{INPUT}{i}": value for i, value in enumerate(case.args)} | \
        {f"{INPUT}{k}": value for k, value in case.kwargs.items()}
    ignored = inputs.get(key)
    if not isinstance(ignored, torch.Tensor):
        return mismatch
    equal = [_named(other, names) for other, value in inputs.items() if other != key and isinstance(value, torch.Tensor)
             and value.shape == ignored.shape and torch.equal(value, ignored)]
    if not equal:
        return mismatch
    return replace(mismatch, message=f"{mismatch.message} In this case {' and '.join(equal)} hold the same values as "
                                     f"{_named(key, names)}: is {_named(key, names)} replaced by {equal[0]} in your "
                                     "code?")


def _named(key: str, names: tuple[str, ...]) -> str:
    """The input a gradient's key names (a position, or a keyword) in words: `memory`; ``names`` are the names of
    the positions."""
    place = key.removeprefix(INPUT)
    if not place.isdigit():
        return f"`{place}`"
    return f"`{names[int(place)]}`" if int(place) < len(names) else f"argument {int(place) + 1}"


def _input_gradient_mismatch(actual: Any, expected: torch.Tensor, tolerance: Any, name: str,
                             what: str) -> Mismatch | None:
    if actual is None:  # no gradient reached the input: right only where the reference's is zero
        if compare(torch.zeros_like(expected), expected, tolerance) is None:
            return None
        return Mismatch("gradients", f"no gradient reaches the input {name}: something in your {what} detaches it "
                                     f"({DETACHED}), so training would never update what produced it.")
    mismatch = compare(actual, expected, tolerance, where=f"the gradient with respect to the input {name}")
    if mismatch is None:
        return None
    return Mismatch("gradients", f"{mismatch.message} The output is right, so its gradient goes wrong elsewhere: "
                                 f"part of the computation is cut off from autograd ({DETACHED}), an input stands in "
                                 "for another of equal value, or an operation's gradient is wrong (torch.where and "
                                 "nan_to_num pass 0 times NaN to a branch that is NaN or inf: make that branch finite "
                                 "before it is computed).")


def _with_precision_note(prepared: PreparedCase, actual: Any, mismatch: Mismatch | None) -> Mismatch | None:
    """``mismatch``, saying so when a float64 answer is off by about float32's rounding (within the tolerance
    scaled up to float32, and nearer that than float64's): some step of the learner's code may compute in float32,
    or add a small constant."""
    if mismatch is None or mismatch.stage != "values" or prepared.context.dtype != torch.float64:
        return mismatch
    ratio = eps_of(torch.float32) / eps_of(torch.float64)
    if not _matches(actual, prepared.expected, scaled(prepared.tolerance, ratio)) or \
            _matches(actual, prepared.expected, scaled(prepared.tolerance, ratio ** 0.5)):
        return mismatch
    return replace(mismatch, message=mismatch.message + " The error is about float32's rounding: does some step "
                   "compute in float32 (a tensor made without dtype=x.dtype, such as torch.tensor(d_k), or a .float())? "
                   "Keep every step in the inputs' dtype. A small constant added for safety (log(w + 1e-9)) shows up "
                   "at this size too: guard with torch.where instead.")


def _matching_mistakes(exercise: Exercise, prepared: PreparedCase, actual: Any) -> tuple[str, ...]:
    """The names of the known mistakes whose output on this case equals the learner's (none in training
    mode: the mistakes are defined in eval mode, and would draw other dropout masks)."""
    case = prepared.case
    if case.training:
        return ()
    leading = (prepared.reference,) if exercise.kind == "module" else ()
    names = []
    for mistake in exercise.mistakes:
        try:
            with torch.no_grad():
                wrong = mistake.variant(*leading, *clone(case.args), **clone(case.kwargs))
        except Exception:  # a variant may not apply to every input
            continue
        if _matches(actual, wrong, prepared.tolerance):
            names.append(mistake.name)
    return tuple(names)


def judge_all(exercise: Exercise, prepared: list[PreparedCase], produced: list[Produced]) -> list[CaseOutcome]:
    """The verdict on every case; the first visible case whose output is wrong in values or shape also says
    how that output relates to the expected one (:func:`autograder.diagnosis.relate`)."""
    outcomes = [judge(exercise, case, output) for case, output in zip(prepared, produced)]
    for i, outcome in enumerate(outcomes):
        if outcome.mismatch and outcome.mismatch.stage in DIAGNOSABLE_STAGES and not outcome.hidden \
                and not outcome.training:
            outcomes[i] = replace(outcome, relation=_relation(exercise, prepared[i], produced[i].output))
            break
    return outcomes


def _relation(exercise: Exercise, prepared: PreparedCase, actual: Any) -> str:
    """How the learner's wrong output on this case relates to the expected one; the reference (the module with
    the case's weights) recomputes it on other arguments."""
    case = prepared.case
    run = prepared.reference if exercise.kind == "module" else exercise.reference
    call = Call(lambda *args, **kwargs: run(*args, **kwargs), case.args, case.kwargs, input_names(exercise),
                scale_inputs=exercise.kind != "module")
    return relate(actual, prepared.expected, prepared.tolerance, call)


class ExerciseRun:
    """Checks one learner object against one :class:`Exercise`, in this process."""

    def __init__(self, exercise: Exercise, learner: Any):
        self.exercise, self.learner = exercise, learner

    def run(self, seed: int, hidden: bool, devices: list[torch.device]) -> list[CaseOutcome]:
        prepared = prepare_cases(self.exercise, seed, hidden, devices)
        return judge_all(self.exercise, prepared, [produce(self.exercise, self.learner, case) for case in prepared])


def diagnose(exercise: Exercise, outcomes: list[CaseOutcome]) -> Mistake | None:
    """The known mistake that explains the failures: the first that matches every failed
    case it could be compared on, else the first that matches the first such case (a mistake that
    only matches a later case, where it happens to coincide with the learner's slip, is not named)."""
    compared = [o for o in outcomes if o.mismatch and o.mismatch.stage in DIAGNOSABLE_STAGES and not o.training]
    if not compared:
        return None
    for mistake in exercise.mistakes:
        if all(mistake.name in o.matching_mistakes for o in compared):
            return mistake
    first = compared[0].matching_mistakes[0] if compared[0].matching_mistakes else None
    return next((m for m in exercise.mistakes if m.name == first), None)


def _matches(actual: Any, wrong: Any, tolerance: Any) -> bool:
    try:
        return compare(actual, wrong, tolerance) is None
    except Exception:  # a variant's output of another structure than the learner's is simply no match
        return False
