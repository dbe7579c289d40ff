"""Running an exercise's cases against the learner's code, on every dtype and device.

For each case the reference runs first, on its own copy of the inputs; then the
learner's code runs on another copy, inside the forbidden-API tripwires. The outputs go
through the staged comparison; when the values are wrong, the exercise's known mistakes
are evaluated on the same inputs and named when one of them matches.
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from autograder.compare import Mismatch, compare
from autograder.exercise import Case, CaseContext, Exercise, Mistake
from autograder.forbidden import ForbiddenAPIUsed, forbidden_calls
from autograder.modules import copy_reference_weights, gradients_by_name

# Failures where the learner's output exists and can be compared with a known mistake's.
DIAGNOSABLE_STAGES = ("shape", "values", "nan")


@dataclass(frozen=True)
class CaseOutcome:
    """The verdict on one case at one dtype and device."""

    case: str
    device: str
    dtype: str
    mismatch: Mismatch | None = None
    matching_mistakes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.mismatch is None


def available_devices() -> list[torch.device]:
    """CPU, and CUDA when a usable GPU is present."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def _clone(value: Any) -> Any:
    """A deep copy of case inputs, so neither side can change what the other sees."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


def _as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_as_numpy(v) for v in value)
    return value


def _raised(error: BaseException) -> Mismatch:
    """The message for code that raised instead of returning."""
    if isinstance(error, NotImplementedError):
        return Mismatch("raises", "not implemented yet: replace `raise NotImplementedError` with your solution.")
    if isinstance(error, ForbiddenAPIUsed):
        return Mismatch("forbidden", f"your code calls {error.api}, which this exercise asks you to write yourself.")
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (line {frames[-1].lineno}: `{frames[-1].line}`)" if frames and frames[-1].line else ""
    return Mismatch("raises", f"your code raised {type(error).__name__}: {error}{where}.")


def _call_guarded(fn: Callable[[], Any], forbidden: tuple[str, ...]) -> tuple[Any, Mismatch | None]:
    try:
        with forbidden_calls(forbidden) as called:
            result = fn()
    except Exception as error:  # the learner's code may raise anything; it becomes feedback
        return None, _raised(error)
    if called:
        return None, _raised(ForbiddenAPIUsed(called[0]))
    return result, None


class ExerciseRun:
    """Checks one learner object against one :class:`Exercise`."""

    def __init__(self, exercise: Exercise, learner: Any):
        self.exercise, self.learner = exercise, learner

    def run(self, seed: int, hidden: bool, devices: list[torch.device]) -> list[CaseOutcome]:
        outcomes = []
        for device in devices if not self.exercise.numpy else [torch.device("cpu")]:
            for dtype in self.exercise.dtypes:
                context = CaseContext(torch.Generator().manual_seed(seed), device, dtype)
                for case in self.exercise.make_cases(context, hidden):
                    outcomes.append(self._run_case(case, context))
        return outcomes

    def _run_case(self, case: Case, context: CaseContext) -> CaseOutcome:
        label = dict(case=case.label, device=str(context.device), dtype=str(context.dtype).replace("torch.", ""))
        if self.exercise.kind == "module":
            return self._run_module_case(case, context, label)
        args, kwargs = (_as_numpy(case.args), case.kwargs) if self.exercise.numpy else (case.args, case.kwargs)
        expected = self.exercise.reference(*_clone(args), **_clone(kwargs))
        actual, error = _call_guarded(lambda: self.learner(*_clone(args), **_clone(kwargs)), self.exercise.forbidden)
        if error:
            return CaseOutcome(**label, mismatch=error)
        return self._judge(actual, expected, context, label, lambda v: v(*_clone(args), **_clone(kwargs)))

    def _run_module_case(self, case: Case, context: CaseContext, label: dict) -> CaseOutcome:
        reference = self.exercise.reference(*case.init).to(context.device, context.dtype).eval()
        learner, error = _call_guarded(lambda: self.learner(*case.init), self.exercise.forbidden)
        if error is None:
            learner, error = copy_reference_weights(reference, learner, context.device, context.dtype)
        if error:
            return CaseOutcome(**label, mismatch=error)
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        actual, error = _call_guarded(lambda: learner(*_clone(case.args), **_clone(case.kwargs)),
                                      self.exercise.forbidden)
        if error:
            return CaseOutcome(**label, mismatch=error)
        outcome = self._judge(actual, expected, context, label,
                              lambda v: v(reference, *_clone(case.args), **_clone(case.kwargs)))
        if not outcome.passed:
            return outcome
        grads = gradients_by_name(reference, expected), gradients_by_name(learner, actual)
        mismatch = compare(grads[1], grads[0], self.exercise.tolerances[context.dtype], where="the gradients")
        return CaseOutcome(**label, mismatch=mismatch)

    def _judge(
        self, actual: Any, expected: Any, context: CaseContext, label: dict, evaluate: Callable[[Callable], Any]
    ) -> CaseOutcome:
        """Compare with the expected output; on a wrong result, note which known mistakes it matches."""
        tolerance = self.exercise.tolerances[context.dtype]
        mismatch = compare(actual, expected, tolerance)
        matches = ()
        if mismatch and mismatch.stage in DIAGNOSABLE_STAGES:
            matches = self._matching_mistakes(actual, tolerance, evaluate)
        return CaseOutcome(**label, mismatch=mismatch, matching_mistakes=matches)

    def _matching_mistakes(
        self, actual: Any, tolerance: tuple[float, float], evaluate: Callable[[Callable], Any]
    ) -> tuple[str, ...]:
        """The names of the known mistakes whose output on this case equals the learner's."""
        names = []
        for mistake in self.exercise.mistakes:
            try:
                with torch.no_grad():
                    wrong = evaluate(mistake.variant)
            except Exception:  # a variant may not apply to every input
                continue
            if _matches(actual, wrong, tolerance):
                names.append(mistake.name)
        return tuple(names)


def diagnose(exercise: Exercise, outcomes: list[CaseOutcome]) -> Mistake | None:
    """The known mistake that explains the failures: the first that matches every failed
    case it could be compared on, else the first match of the first such case."""
    compared = [o for o in outcomes if o.mismatch and o.mismatch.stage in DIAGNOSABLE_STAGES]
    if not compared:
        return None
    for mistake in exercise.mistakes:
        if all(mistake.name in o.matching_mistakes for o in compared):
            return mistake
    first = next((o.matching_mistakes[0] for o in compared if o.matching_mistakes), None)
    return next((m for m in exercise.mistakes if m.name == first), None)


def _matches(actual: Any, wrong: Any, tolerance: tuple[float, float]) -> bool:
    try:
        return compare(actual, wrong, tolerance) is None
    except Exception:
        return False
