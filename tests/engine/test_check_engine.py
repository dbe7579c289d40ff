"""The checking engine on every exercise of the course."""

import dataclasses

import pytest
import torch

from autograder import check
from autograder.checker import HIDDEN_SEED_VARIABLE, run_check
from autograder.exercise import Exercise
from autograder.harness import forbidden
from autograder.registry import find_exercise, lesson_exercises
from autograder.runner import ExerciseRun, available_devices, diagnose
from tests.support.notebooks import GRADED_LESSONS, solution_of

EXERCISES = [ex for lesson in GRADED_LESSONS for ex in lesson_exercises(lesson)]
IDS = [ex.name for ex in EXERCISES]


def solution(exercise: Exercise):
    return solution_of(exercise)


def stub_of(exercise: Exercise):
    """What the learner's notebook holds before any work: the signature and NotImplementedError."""
    if exercise.kind == "module":
        class Stub(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                raise NotImplementedError
        return Stub

    def stub(*args, **kwargs):
        raise NotImplementedError
    return stub


def as_learner_code(exercise: Exercise, variant):
    """A learner's function or class that computes what ``variant`` computes."""
    if exercise.kind == "module":
        base = exercise.reference
        return type("Wrong", (base,), {"forward": lambda self, *a, **k: variant(self, *a, **k),
                                       "__module__": __name__})
    return lambda *args, **kwargs: variant(*args, **kwargs)


COURSE = ("01-embeddings", "02-attention", "03-multihead", "04-ffn-norm", "05-encoder-decoder",
          "06-transformer", "07-reasoning")


@pytest.mark.parametrize("lesson", COURSE)
def test_every_lesson_has_at_least_five_graded_exercises(lesson):
    assert len(lesson_exercises(lesson)) >= 5


def test_the_course_has_at_least_38_exercises():
    assert sum(len(lesson_exercises(lesson)) for lesson in COURSE) >= 38


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_solution_passes_visible_and_hidden_cases_on_every_device(exercise, monkeypatch):
    result = run_check(solution(exercise), exercise.name)
    assert result.passed, result.message
    assert result.points == exercise.points
    assert {o.device for o in result.outcomes} >= {str(d) for d in available_devices()} or exercise.numpy
    monkeypatch.setenv(HIDDEN_SEED_VARIABLE, "987")
    assert run_check(solution(exercise), exercise.name, hidden=True).passed


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_stub_fails_with_not_implemented_message(exercise):
    result = run_check(stub_of(exercise), exercise.name)
    assert not result.passed and result.points == 0
    assert "not implemented yet" in result.message
    assert "Traceback" not in result.message


@pytest.mark.parametrize(
    "exercise, mistake",
    [(ex, m) for ex in EXERCISES for m in ex.mistakes],
    ids=[f"{ex.name}-{m.name}" for ex in EXERCISES for m in ex.mistakes],
)
def test_each_known_mistake_is_recognised_and_named(exercise, mistake, monkeypatch):
    permissive = dataclasses.replace(exercise, forbidden=())  # some variants call the built-ins
    monkeypatch.setattr(forbidden, "_is_course_code", lambda frame: False)  # and the reference's helpers
    outcomes = ExerciseRun(permissive, as_learner_code(exercise, mistake.variant)).run(
        seed=1, hidden=False, devices=[torch.device("cpu")])
    assert not all(o.passed for o in outcomes), f"{mistake.name} passes every case"
    assert diagnose(exercise, outcomes) == mistake


@pytest.mark.parametrize("name, api", [
    ("softmax", "torch.softmax"),
    ("scaled_dot_product_attention", "torch.nn.functional.scaled_dot_product_attention"),
])
def test_forbidden_api_is_reported(name, api):
    def cheat_softmax(x, dim=-1, temperature=1.0):
        return torch.softmax(x / temperature, dim)

    def cheat_attention(q, k, v, mask=None):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out, None

    cheat = cheat_softmax if name == "softmax" else cheat_attention
    result = run_check(cheat, name)
    assert not result.passed and api in result.message


def test_forbidden_api_through_an_alias_is_reported():
    from torch.nn.functional import scaled_dot_product_attention as fused

    def attention_scores(q, k):
        return fused(q, k, torch.eye(k.size(-2), dtype=q.dtype, device=q.device)[None].expand(*k.shape[:-1], -1))

    result = run_check(attention_scores)
    assert not result.passed and "scaled_dot_product_attention" in result.message


def test_the_reference_itself_is_refused():
    from tfcourse.attention import softmax as reference

    result = run_check(reference)
    assert not result.passed and "reference implementation" in result.message


def test_importing_the_reference_is_refused():
    def softmax(x, dim=-1, temperature=1.0):
        from tfcourse.attention import softmax as ref
        return ref(x, dim, temperature)

    result = run_check(softmax)
    assert not result.passed and "tfcourse" in result.message


def test_wrong_device_is_named(monkeypatch):
    """A function that creates a tensor on the CPU fails on CUDA with a device message."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")

    def attention_entropy(weights):
        ones = torch.ones(weights.shape, dtype=weights.dtype)  # forgot device=
        return -(weights * torch.where(weights > 0, weights, ones).log()).sum(-1)

    result = run_check(attention_entropy)
    assert not result.passed and "device" in result.message


def test_dtype_mistake_is_named():
    def attention_scores(q, k):
        return (q @ k.transpose(-2, -1)).float() / q.shape[-1] ** 0.5

    result = run_check(attention_scores)
    assert not result.passed and "dtype" in result.message


def test_check_raises_assertion_with_report_under_nbgrader_and_shows_hints(capsys, monkeypatch):
    def attention_scores(q, k):
        return q @ k.transpose(-2, -1)

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match="no sqrt"):
        check(attention_scores, hint=2)
    assert "Hint 2 of 3" in capsys.readouterr().out


def test_a_failing_check_in_a_notebook_prints_its_report_and_lets_run_all_go_on(capsys, monkeypatch):
    def attention_scores(q, k):
        return q @ k.transpose(-2, -1)

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    result = check(attention_scores, hint=3)
    printed = capsys.readouterr().out
    assert not result.passed and result.points == 0
    assert "Hint 3 of 3" in printed and "no sqrt" in printed and "Traceback" not in printed
    assert "That was the last of 3 hints." in printed and "hint=4" not in printed
    assert "Cases:" in printed and "FAIL" in printed


def test_the_hint_footer_offers_the_next_rung(capsys, monkeypatch):
    def attention_scores(q, k):
        return q @ k.transpose(-2, -1)

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    check(attention_scores, hint=1)
    assert "check(attention_scores, hint=2) shows hint 2 of 3" in capsys.readouterr().out


def test_check_returns_result_and_prints_on_success(capsys):
    result = check(solution(find_exercise("causal_mask")))
    assert result.passed and result.points == result.max_points == 1
    assert "all" in capsys.readouterr().out


def test_renamed_function_is_found_by_name_or_explained():
    renamed = solution(find_exercise("attention_entropy"))
    assert run_check(renamed, name="attention_entropy").passed
    with pytest.raises(KeyError, match="Did you mean attention_entropy"):
        run_check(lambda w: w, name="attention_entropi")


def test_hidden_cases_follow_the_instructors_seed(monkeypatch):
    exercise = find_exercise("softmax")
    monkeypatch.setenv(HIDDEN_SEED_VARIABLE, "5")
    from autograder.checker import hidden_seed
    first = exercise.make_cases(_context(hidden_seed()), True)[0].args[0]
    again = exercise.make_cases(_context(hidden_seed()), True)[0].args[0]
    monkeypatch.setenv(HIDDEN_SEED_VARIABLE, "6")
    other = exercise.make_cases(_context(hidden_seed()), True)[0].args[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


def _context(seed):
    from autograder.exercise import CaseContext
    return CaseContext(torch.Generator().manual_seed(seed), torch.device("cpu"), torch.float64)


def test_a_finite_value_where_inf_is_expected_is_a_values_mismatch():
    from autograder.compare import compare

    expected = torch.tensor([1.0, float("-inf"), 2.0])
    mismatch = compare(torch.tensor([1.0, 0.0, 2.0]), expected, (1e-5, 1e-4))
    assert mismatch is not None and mismatch.stage == "values"
    assert "-inf" in mismatch.message and "index (1,)" in mismatch.message
    assert compare(expected.clone(), expected, (1e-5, 1e-4)) is None


def test_none_where_a_plain_value_is_expected_is_a_values_mismatch_that_mistakes_can_explain():
    from autograder.compare import compare

    mismatch = compare(None, 4, (1e-9, 1e-7))
    assert mismatch is not None and mismatch.stage == "values"
    assert "None" in mismatch.message and "4" in mismatch.message
    assert compare(None, None, (1e-9, 1e-7)) is None
    assert compare("4", 4, (1e-9, 1e-7)).stage == "type"


def test_code_that_reaches_the_reference_at_any_depth_is_refused():
    """A wrapper, an alias bound elsewhere or a NumPy helper of tfcourse: the same message as an import."""
    import numpy as np

    import tfcourse.attention as reference
    import tfcourse.np as reference_np

    helper, normalise = reference_np.softmax, reference.softmax

    def softmax(x, dim=-1, temperature=1.0):
        return normalise(x, dim, temperature)

    def numpy_attention(q, k, v, mask=None):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        weights = helper(scores if mask is None else np.where(mask, scores, -np.inf))
        return weights @ v, weights

    for learner, api in ((softmax, "tfcourse.attention.softmax"), (numpy_attention, "tfcourse.np.attention.softmax")):
        result = run_check(learner)
        assert not result.passed
        assert f"your code uses {api}: the course's own packages are not available" in result.message
