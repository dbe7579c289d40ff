"""``check()``: the learner-facing entry point, in a notebook or a hidden test cell.

    from autograder import check
    check(softmax)            # visible cases; prints the report (raises AssertionError under nbgrader)
    check(softmax, hint=1)    # the first hint, then the check
    check(softmax, hidden=True)   # the instructor's hidden cases (seed from TFCOURSE_HIDDEN_SEED)
"""

from __future__ import annotations

import inspect
import os
import secrets
from typing import Any

from autograder.exercise import Exercise
from autograder.harness.forbidden import forbidden_use, is_course_object, scan_source
from autograder.harness.mismatch import Mismatch
from autograder.registry import EXERCISES, find_exercise
from autograder.runner import CaseOutcome, ExerciseRun, available_devices, diagnose
from autograder.scores import CheckResult
from autograder.seeds import HIDDEN_SEED_VARIABLE, VISIBLE_SEED


GRADING_VARIABLE = "NBGRADER_EXECUTION"  # set by nbgrader while it autogrades or validates a notebook


def hidden_seed() -> int:
    """The instructor's seed for hidden cases; a fresh random one when none is set."""
    value = os.environ.get(HIDDEN_SEED_VARIABLE)
    return int(value) if value else secrets.randbelow(2**31)


def _failure(exercise: Exercise, mismatch: Mismatch) -> CheckResult:
    message = f"{exercise.name}: {mismatch.message}"
    return CheckResult(exercise.name, 0, exercise.points, False, message,
                       [CaseOutcome("before running", "-", "-", mismatch)])


def _pre_run_problem(exercise: Exercise, obj: Any) -> Mismatch | None:
    """Reasons not to run the code at all: it is the reference, or it names forbidden APIs."""
    if is_course_object(obj):
        return Mismatch("forbidden", "this is the course's reference implementation, not your code. "
                                     "Check the function you wrote in this notebook.")
    named = scan_source(obj, exercise.forbidden)
    return forbidden_use(named) if named else None


# What a failed hidden case may tell: the stage, never the expected values.
HIDDEN_STAGE_SUMMARIES = {
    "type": "the output's type is not the one the exercise asks for.",
    "shape": "the output's shape is wrong for this input.",
    "dtype": "the output's dtype differs from the inputs' dtype.",
    "device": "the output is not on the inputs' device.",
    "nan": "the output contains NaN or inf where a finite value is expected.",
    "values": "the output's values are wrong (beyond the tolerance).",
    "gradients": "the output is right but its gradients are not: part of the computation is cut off from autograd, "
                 "or its gradient is wrong.",
}


def report(exercise: Exercise, outcomes: list[CaseOutcome], hint: int | None = None) -> str:
    """The learner-facing report on an exercise's outcomes: the first failure, what explains it (the
    sub-layer where it goes wrong, a known mistake it matches, or how the output relates to the expected
    one), a table of the cases, and where to find hints (``hint``: the rung just shown). A failed hidden
    case is described by its stage only."""
    failed = [o for o in outcomes if not o.passed]
    cases = len(outcomes)
    if not failed:
        devices = ", ".join(sorted({o.device for o in outcomes}))
        return f"{exercise.name}: all {cases} cases pass on {devices}. {exercise.points}/{exercise.points} points."
    visible_failures = [o for o in failed if not o.hidden]
    first = (visible_failures or failed)[0]
    if first.hidden:
        hidden = [o for o in outcomes if o.hidden]
        lines = [f"{exercise.name}: {len(hidden) - len(failed)} of {len(hidden)} hidden cases pass. "
                 f"0/{exercise.points} points.",
                 f"First hidden failure, case '{first.case}' ({first.dtype} on {first.device}):",
                 f"  {HIDDEN_STAGE_SUMMARIES.get(first.mismatch.stage, first.mismatch.message)}"]
    else:
        lines = [f"{exercise.name}: {cases - len(failed)} of {cases} cases pass. 0/{exercise.points} points.",
                 f"First failure, case '{first.case}' ({first.dtype} on {first.device}):",
                 f"  {first.mismatch.message}"]
    lines += [f"  {line}" for line in _explanations(exercise, outcomes, first)]
    lines += case_table(outcomes)
    lines.append(_hint_footer(exercise, hint))
    return "\n".join(line for line in lines if line.strip())


def _explanations(exercise: Exercise, outcomes: list[CaseOutcome], first: CaseOutcome) -> list[str]:
    """What explains the first failure: the rule its case checks, the sub-layer where a module goes wrong, the
    known mistake, else how the output relates to the expected one; a hint at the device."""
    lines = [f"This case checks a rule the notebook states: {first.rule}" if first.rule else ""]
    if first.sublayer and not first.hidden:
        lines.append(f"Where it goes wrong: {first.sublayer}")
    mistake = diagnose(exercise, outcomes)
    relation = next((o.relation for o in outcomes if o.relation), "")
    if mistake:
        lines.append(f"This looks like a known mistake, {mistake.name}: {mistake.explanation}")
    elif relation and not first.hidden:
        lines.append(f"What your output shows: {relation}")
    if first.device != "cpu" and all(o.passed for o in outcomes if o.device == "cpu"):
        lines.append("It passes on the CPU: look for tensors created without device=x.device.")
    return lines


TABLE_ROWS = 12  # the most cases a report's table lists one by one


def case_table(outcomes: list[CaseOutcome]) -> list[str]:
    """A compact table of the cases: one row per case, one column per dtype and device, ``pass`` or ``FAIL``."""
    columns = list(dict.fromkeys((o.dtype, o.device) for o in outcomes))
    verdicts: dict[str, dict[tuple[str, str], str]] = {}
    for o in outcomes:
        verdicts.setdefault(o.case, {})[(o.dtype, o.device)] = "pass" if o.passed else "FAIL"
    rows = list(verdicts.items())
    if len(rows) > TABLE_ROWS:
        failing = [row for row in rows if "FAIL" in row[1].values()]
        rows = failing[:TABLE_ROWS] + [(f"(and {len(rows) - len(failing[:TABLE_ROWS])} more cases)", {})]
    width = min(max(len(label) for label, _ in rows), 48)
    heads = [f"{dtype} {device}" for dtype, device in columns]
    lines = ["Cases:", f"  {'':{width}}  " + "  ".join(heads)]
    for label, marks in rows:
        cells = "  ".join(f"{marks.get(column, ''):{len(head)}}" for column, head in zip(columns, heads))
        lines.append(f"  {_shorten(label, width):{width}}  {cells}".rstrip())
    return lines


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _hint_footer(exercise: Exercise, shown: int | None) -> str:
    """Where to find the next hint: the first, the next after ``shown``, or none after the last."""
    count = len(exercise.hints)
    if not count:
        return ""
    if shown is None or shown < 1:
        return f"Stuck? check({exercise.name}, hint=1) shows the first of {count} hints."
    if shown < count:
        return f"More help: check({exercise.name}, hint={shown + 1}) shows hint {shown + 1} of {count}."
    return f"That was the last of {count} hints."


def _hint(exercise: Exercise, level: int) -> str:
    if not exercise.hints:
        return f"{exercise.name} has no hints."
    level = max(1, min(level, len(exercise.hints)))
    more = f" (next: hint={level + 1})" if level < len(exercise.hints) else ""
    return f"Hint {level} of {len(exercise.hints)}{more}: {exercise.hints[level - 1]}"


def _exercise_for(obj: Any, name: str | None) -> Exercise:
    """The exercise named ``name``; else the one named like ``obj``; else the one whose name the calling
    code binds to ``obj`` (``attention_scores = lambda q, k: ...``, ``from helpers import mine as softmax``),
    as ``tfcourse grade`` finds it by the name in ``check(...)``."""
    if name is None:
        own = getattr(obj, "__name__", type(obj).__name__)
        name = own if own in EXERCISES else _name_bound_by_caller(obj) or own
    return find_exercise(name)


def _name_bound_by_caller(obj: Any) -> str | None:
    """An exercise's name that the first frame outside this module binds to ``obj``."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return None
    scopes = (frame.f_locals, frame.f_globals)
    return next((key for scope in scopes for key, value in scope.items() if value is obj and key in EXERCISES), None)


def run_check(obj: Any, name: str | None = None, hidden: bool = False, devices=None,
              hint: int | None = None) -> CheckResult:
    """Check ``obj`` without printing or raising; see :func:`check` (``hint``: the rung of the hint ladder
    just shown, for the report's footer)."""
    exercise = _exercise_for(obj, name)
    problem = _pre_run_problem(exercise, obj)
    if problem:
        return _failure(exercise, problem)
    seed = hidden_seed() if hidden else VISIBLE_SEED
    outcomes = ExerciseRun(exercise, obj).run(seed, hidden, devices or available_devices())
    passed = all(o.passed for o in outcomes)
    return CheckResult(exercise.name, exercise.points if passed else 0, exercise.points, passed,
                       report(exercise, outcomes, hint), outcomes)


def check(obj: Any, name: str | None = None, *, hint: int | None = None, hidden: bool = False,
          quiet: bool = False) -> CheckResult:
    """Check a learner's function or class against its exercise.

    The exercise is found by ``obj``'s name, or by ``name``. Prints a report and returns a
    :class:`CheckResult`. A failure raises ``AssertionError`` with the report only where a grade is being
    taken (``nbgrader autograde`` and ``validate``, which set ``NBGRADER_EXECUTION``): in a learner's
    notebook it is printed and "Run All" goes on to the next exercise. ``hint=N`` first shows the N-th hint
    of the exercise's ladder.
    """
    if hint is not None:
        print(_hint(_exercise_for(obj, name), hint))
    result = run_check(obj, name, hidden, hint=hint)
    if not result.passed and os.environ.get(GRADING_VARIABLE):
        raise AssertionError(result.message)
    if not quiet or not result.passed:
        print(result.message)
    return result
