"""Running an exercise's cases against the learner's code, on every dtype and device.

Checking is split in three steps, so that grading can run the middle one in a sandbox:

1. :func:`prepare_cases` (trusted): each case's inputs, and the reference's output on its
   own copy of them (for a module, also the reference's weights and gradients), with the
   tolerance derived from the reference's numerics on them (:mod:`autograder.tolerance`);
2. producing the learner's output on another copy, inside the forbidden-API tripwires
   (:mod:`autograder.harness.calls`; :meth:`ExerciseRun.run` does it in this process);
3. :func:`judge` (trusted): the staged comparison; when the values are wrong, the
   exercise's known mistakes are evaluated on the same inputs and named when one matches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from autograder.compare import Mismatch, compare
from autograder.exercise import Case, CaseContext, Exercise, Mistake
from autograder.harness.calls import Produced, clone, function_output, module_output
from autograder.harness.dropout import train_with_fixed_masks
from autograder.harness.weights import gradients_by_name
from autograder.tolerance import convert, derive, eps_of, scaled

# Failures where the learner's output exists and can be compared with a known mistake's.
DIAGNOSABLE_STAGES = ("shape", "values", "nan")


@dataclass(frozen=True)
class CaseOutcome:
    """The verdict on one case at one dtype and device; ``hidden`` marks the instructor's hidden cases,
    ``training`` a module case run in training mode, ``rule`` the stated requirement the case enforces."""

    case: str
    device: str
    dtype: str
    mismatch: Mismatch | None = None
    matching_mistakes: tuple[str, ...] = ()
    hidden: bool = False
    training: bool = False
    rule: str = ""

    @property
    def passed(self) -> bool:
        return self.mismatch is None


@dataclass(frozen=True)
class PreparedCase:
    """A case ready to run and judge: the inputs the learner's code gets, and the reference's answers.

    For a module exercise ``reference`` is the reference module (its weights are what the
    learner's module receives) and ``expected_gradients`` its gradients by parameter name.
    ``tolerance`` and ``gradient_tolerance`` are how close the output and the gradients must
    come (:func:`autograder.tolerance.derive`; ``None``: exactly, or the exercise's fixed ones).
    """

    case: Case
    context: CaseContext
    expected: Any
    hidden: bool = False
    reference: nn.Module | None = None
    expected_gradients: dict[str, torch.Tensor] | None = None
    tolerance: Any = None
    gradient_tolerance: Any = None

    def outcome(self, mismatch: Mismatch | None = None, matching_mistakes: tuple[str, ...] = ()) -> CaseOutcome:
        """The verdict on this case."""
        return CaseOutcome(self.case.label, str(self.context.device), str(self.context.dtype).replace("torch.", ""),
                           mismatch, matching_mistakes, self.hidden, self.case.training, self.case.rule)


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


def _prepare(exercise: Exercise, case: Case, context: CaseContext, seed: int, hidden: bool) -> PreparedCase:
    if exercise.kind != "module":
        if exercise.numpy:
            case = replace(case, args=_as_numpy(case.args))
        expected = exercise.reference(*clone(case.args), **clone(case.kwargs))
        tolerance = _tolerance(exercise, context, expected, lambda fn: exercise.reference(
            *convert(clone(case.args), fn), **convert(clone(case.kwargs), fn)))
        return PreparedCase(case, context, expected, hidden, tolerance=tolerance)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = exercise.reference(*case.init).to(context.device, context.dtype).eval()
    if case.training:
        train_with_fixed_masks(reference, case.seed, context.device)
    expected = reference(*clone(case.args), **clone(case.kwargs))
    gradients = gradients_by_name(reference, expected)

    def answer(fn):
        module = convert(reference, fn)
        output = module(*convert(clone(case.args), fn), **convert(clone(case.kwargs), fn))
        return output, gradients_by_name(module, output)
    tolerance, gradient_tolerance = _tolerance(exercise, context, (expected, gradients), answer, ((1,),)) \
        or (None, None)
    return PreparedCase(case, context, expected, hidden, reference, gradients, tolerance, gradient_tolerance)


def _tolerance(exercise: Exercise, context: CaseContext, expected: Any, answer, pooled: tuple = ()) -> Any:
    """The exercise's fixed tolerance for this dtype where it has one, else the one derived from the
    reference's numerics on this case (for a module: one for the output, one for the gradients)."""
    fixed = (exercise.tolerances or {}).get(context.dtype)
    if fixed is not None:
        return (fixed, fixed) if exercise.kind == "module" else fixed
    return derive(answer, expected, context.dtype, pooled)


def produce(exercise: Exercise, learner: Any, prepared: PreparedCase) -> Produced:
    """The learner's output on a copy of the case's inputs, computed in this process."""
    case, context = prepared.case, prepared.context
    if exercise.kind == "module":
        weights = {name: tensor.detach().clone() for name, tensor in prepared.reference.state_dict().items()}
        return module_output(learner, case.init, weights, clone(case.args), clone(case.kwargs),
                             context.device, context.dtype, exercise.forbidden, case.training, case.seed)
    return function_output(learner, clone(case.args), clone(case.kwargs), exercise.forbidden)


def judge(exercise: Exercise, prepared: PreparedCase, produced: Produced) -> CaseOutcome:
    """The verdict on the learner's output for one case; when the values are wrong, the known
    mistakes whose output on this case equals the learner's."""
    if produced.failure:
        return prepared.outcome(produced.failure)
    tolerance = prepared.tolerance
    mismatch = _with_precision_note(prepared, produced.output,
                                    compare(produced.output, prepared.expected, tolerance))
    if mismatch and mismatch.stage in DIAGNOSABLE_STAGES:
        return prepared.outcome(mismatch, _matching_mistakes(exercise, prepared, produced.output))
    if mismatch:
        return prepared.outcome(mismatch)
    if exercise.kind == "module":
        if produced.gradients is None:
            return prepared.outcome(Mismatch("raises", "the gradients could not be taken through your module's "
                                                       "output: keep the computation in torch operations."))
        return prepared.outcome(compare(produced.gradients, prepared.expected_gradients,
                                        prepared.gradient_tolerance, where="the gradients"))
    return prepared.outcome()


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


class ExerciseRun:
    """Checks one learner object against one :class:`Exercise`, in this process."""

    def __init__(self, exercise: Exercise, learner: Any):
        self.exercise, self.learner = exercise, learner

    def run(self, seed: int, hidden: bool, devices: list[torch.device]) -> list[CaseOutcome]:
        return [judge(self.exercise, prepared, produce(self.exercise, self.learner, prepared))
                for prepared in prepare_cases(self.exercise, seed, hidden, devices)]


def diagnose(exercise: Exercise, outcomes: list[CaseOutcome]) -> Mistake | None:
    """The known mistake that explains the failures: the first that matches every failed
    case it could be compared on, else the first match of the first such case."""
    compared = [o for o in outcomes if o.mismatch and o.mismatch.stage in DIAGNOSABLE_STAGES and not o.training]
    if not compared:
        return None
    for mistake in exercise.mistakes:
        if all(mistake.name in o.matching_mistakes for o in compared):
            return mistake
    first = next((o.matching_mistakes[0] for o in compared if o.matching_mistakes), None)
    return next((m for m in exercise.mistakes if m.name == first), None)


def _matches(actual: Any, wrong: Any, tolerance: Any) -> bool:
    try:
        return compare(actual, wrong, tolerance) is None
    except Exception:  # a variant's output of another structure than the learner's is simply no match
        return False
