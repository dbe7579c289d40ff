"""Gradients are compared, not only outputs: code whose output is right while part of its
computation is cut off from autograd fails.

A module's parameters' gradients, and the gradients of its floating-point inputs (a
DecoderLayer that detaches `memory` passes every value but trains no encoder), and, for the
function exercises a model trains through (``Exercise.gradients``), their inputs' gradients,
are compared with the reference's, in ``check()`` and in the grading sandbox alike.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.checker import run_check
from autograder.exercise import Case, CaseContext
from autograder.grading.pipeline import _produced
from autograder.grading.plan import _case_input
from autograder.harness.calls import clone
from autograder.harness.serve import Task, _produce
from autograder.harness.weights import track_inputs
from autograder.harness.wire import dumps, loads
from autograder.registry import EXERCISES, find_exercise
from autograder.runner import ExerciseRun, input_names, judge, prepare_cases, produce
from autograder.seeds import VISIBLE_SEED
from tests.support.notebooks import solution_of

CPU = [torch.device("cpu")]
GRADIENT_FUNCTIONS = ("softmax", "attention_scores", "scaled_dot_product_attention", "apply_rotary", "split_heads",
                      "merge_heads", "gelu", "layer_norm", "rms_norm", "label_smoothing_loss", "completion_loss",
                      "grpo_objective", "apply_rope", "repeat_kv", "top_k_routing", "load_balancing_loss",
                      "linear_attention", "patchify")
DETACHED_MEMORY = "no gradient reaches the input `memory`: something in your module's forward detaches it"


def failures(name: str, learner, hidden: bool = False) -> list[str]:
    return [o.mismatch.message for o in ExerciseRun(find_exercise(name), learner).run(VISIBLE_SEED, hidden, CPU)
            if not o.passed]


# --- modules: the inputs' gradients -------------------------------------------------------------------

def _decoder_detaching_memory():
    class DecoderLayer(solution_of(find_exercise("DecoderLayer"))):
        def forward(self, x, memory, tgt_mask=None, memory_mask=None):
            return super().forward(x, memory.detach(), tgt_mask, memory_mask)
    return DecoderLayer


def _encoder_detaching_x():
    class EncoderLayer(solution_of(find_exercise("EncoderLayer"))):
        def forward(self, x, mask=None):
            return super().forward(x.detach(), mask)
    return EncoderLayer


def test_a_decoder_layer_that_detaches_memory_fails_and_says_so():
    result = run_check(_decoder_detaching_memory(), "DecoderLayer", devices=CPU)
    assert not result.passed and result.points == 0
    assert DETACHED_MEMORY in result.message
    assert all(DETACHED_MEMORY in o.mismatch.message for o in result.outcomes if not o.passed)


def test_an_encoder_layer_that_detaches_its_input_fails():
    result = run_check(_encoder_detaching_x(), "EncoderLayer", devices=CPU)
    assert not result.passed
    assert "no gradient reaches the input `x`" in result.message


def test_attention_that_detaches_the_keys_fails_also_where_one_tensor_is_query_key_and_value():
    class MultiHeadAttention(solution_of(find_exercise("MultiHeadAttention"))):
        def forward(self, query, key, value, mask=None):
            return super().forward(query, key.detach(), value, mask)
    result = run_check(MultiHeadAttention, "MultiHeadAttention", devices=CPU)
    assert not any(o.passed for o in result.outcomes)
    assert all(o.mismatch.message.startswith("no gradient reaches the input `key`") for o in result.outcomes)
    assert result.outcomes[0].case.startswith("self-attention")  # x, x, x: each place has its own gradient


def test_a_module_whose_backward_fails_is_told_why():
    class FeedForward(solution_of(find_exercise("FeedForward"))):
        def forward(self, x):
            hidden = self.dropout(self.activation(self.w1(x)))
            out = self.w2(hidden)
            hidden.mul_(1.0)  # the same values, but w2's backward needs its input as it was: autograd refuses
            return out
    messages = failures("FeedForward", FeedForward)
    assert messages and messages[0].startswith("the gradients could not be taken through your module's output")
    assert "modified by an inplace operation" in messages[0]


# --- functions a model trains through -----------------------------------------------------------------

def layer_norm_detached_statistics(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True).detach()
    var = ((x - mean) ** 2).mean(-1, keepdim=True).detach()
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def layer_norm_detached_output(x, weight, bias, eps=1e-5):
    with torch.no_grad():
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + eps) * weight + bias


def layer_norm_through_numpy(x, weight, bias, eps=1e-5):
    y = x.detach().cpu().numpy()
    normed = (y - y.mean(-1, keepdims=True)) / (y.var(-1, keepdims=True) + eps) ** 0.5
    return torch.from_numpy(normed).to(x.device) * weight + bias


def layer_norm_rsqrt(x, weight, bias, eps=1e-5):
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred * torch.rsqrt(centred.square().mean(dim=-1, keepdim=True) + eps) * weight + bias


def layer_norm_var_mean(x, weight, bias, eps=1e-5):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / (var + eps).sqrt() * weight + bias


def test_a_layer_norm_with_detached_statistics_fails_on_its_gradients():
    messages = failures("layer_norm", layer_norm_detached_statistics)
    assert messages and messages[0].startswith("the gradient with respect to the input `x` has the right shape "
                                               "but wrong values")
    assert "part of the computation is cut off from autograd" in messages[0]


@pytest.mark.parametrize("learner", [layer_norm_detached_output, layer_norm_through_numpy])
def test_a_layer_norm_cut_off_from_autograd_fails(learner):
    messages = failures("layer_norm", learner)
    assert messages and all(message.startswith("no gradient reaches the input `x`: something in your function "
                                               "detaches it") for message in messages)


@pytest.mark.parametrize("learner", [layer_norm_rsqrt, layer_norm_var_mean])
@pytest.mark.parametrize("hidden", [False, True])
def test_an_honest_layer_norm_passes_with_its_gradients(learner, hidden):
    assert not failures("layer_norm", learner, hidden)


def test_a_softmax_with_a_detached_denominator_fails():
    def softmax(x, dim=-1, temperature=1.0):
        z = x / temperature
        m = z.amax(dim=dim, keepdim=True)
        e = torch.exp(z - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
        total = e.sum(dim=dim, keepdim=True).detach()
        return e / torch.where(total > 0, total, torch.ones_like(total))
    assert failures("softmax", softmax)


def test_an_attention_that_detaches_its_weights_fails():
    softmax = solution_of(find_exercise("softmax"))

    def scaled_dot_product_attention(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        weights = softmax(scores).detach()
        return weights @ v, weights
    messages = failures("scaled_dot_product_attention", scaled_dot_product_attention)
    assert messages and messages[0].startswith("no gradient reaches the input `q`")


def test_a_function_that_changes_its_input_in_place_is_told_so_also_where_gradients_are_compared():
    def gelu(x):
        return x.mul_(0.5 * (1 + torch.erf(x / math.sqrt(2))))
    messages = failures("gelu", gelu)
    assert messages and all(m.startswith("your code changed its input `x` in place") for m in messages)


@pytest.mark.parametrize("name", GRADIENT_FUNCTIONS)
def test_the_solution_passes_with_its_gradients_and_every_case_has_some(name):
    exercise = EXERCISES[name]
    assert exercise.gradients and exercise.kind == "function" and not exercise.numpy
    for hidden in (False, True):
        prepared = prepare_cases(exercise, VISIBLE_SEED, hidden, CPU)
        assert all(p.expected_gradients for p in prepared), "every case has an input with a gradient"
        assert all(judge(exercise, p, produce(exercise, solution_of(exercise), p)).passed for p in prepared)


def test_only_the_listed_functions_compare_gradients():
    assert {e.name for e in EXERCISES.values() if e.gradients} == set(GRADIENT_FUNCTIONS)


# --- the mechanics ------------------------------------------------------------------------------------

def test_the_cases_inputs_are_left_as_they_were():
    exercise = find_exercise("DecoderLayer")
    prepared = prepare_cases(exercise, VISIBLE_SEED, False, CPU)[0]
    before = clone((prepared.case.args, prepared.case.kwargs))
    judge(exercise, prepared, produce(exercise, solution_of(exercise), prepared))
    for old, new in zip(before[0], prepared.case.args):
        assert not new.requires_grad and new.grad is None and torch.equal(old, new)


def test_each_floating_input_is_tracked_at_its_place_and_integers_get_no_gradient():
    x, ids = torch.randn(2, 3), torch.tensor([1, 2])
    args, kwargs, leaves = track_inputs((x, x, ids), {"memory": x, "mask": ids > 1})
    assert list(leaves) == ["0", "1", "memory"]
    assert args[2] is ids and kwargs["mask"].dtype == torch.bool
    assert all(torch.equal(t, x) and not t.is_leaf for t in (args[0], args[1], kwargs["memory"]))
    (args[0] + 2 * args[1]).sum().backward()
    assert torch.equal(leaves["1"].grad, torch.full((2, 3), 2.0)) and leaves["memory"].grad is None
    assert not x.requires_grad


def test_the_inputs_are_named_after_the_references_parameters():
    assert input_names(find_exercise("DecoderLayer")) == ("x", "memory", "tgt_mask", "memory_mask")
    assert input_names(find_exercise("layer_norm")) == ("x", "weight", "bias", "eps")


def test_an_input_without_gradient_passes_where_the_references_is_zero():
    loss = solution_of(find_exercise("label_smoothing_loss"))

    def label_smoothing_loss(logits, target, smoothing=0.1, ignore_index=-100):
        keep = target != ignore_index
        if not keep.any():
            return torch.zeros((), dtype=logits.dtype, device=logits.device)  # a constant: no gradient at all
        return loss(logits, target, smoothing, ignore_index)
    assert not failures("label_smoothing_loss", label_smoothing_loss)


@pytest.mark.parametrize("learner, passes", [("solution", True), ("detached memory", False)])
def test_the_grading_sandbox_sends_the_inputs_gradients_back_for_the_judge(learner, passes):
    """What the sandbox's call computes travels as plain data and is judged as in check()."""
    exercise = find_exercise("DecoderLayer")
    learner = solution_of(exercise) if learner == "solution" else _decoder_detaching_memory()
    prepared = prepare_cases(exercise, VISIBLE_SEED, False, CPU)[0]
    case_input = _case_input(prepared)
    produced = _produce(Task("DecoderLayer", "module", (), [case_input]), learner, case_input, 30.0)
    event = loads(dumps({"event": "case", "task": 0, "case": 0, "output": produced.output,
                         "gradients": produced.gradients, "gradient_error": produced.gradient_error}))
    assert {name for name in event["gradients"] if name.startswith("input")} == \
        ({"input 0", "input 1"} if passes else {"input 0"})
    outcome = judge(exercise, prepared, _produced(event))
    assert outcome.passed is passes
    assert passes or DETACHED_MEMORY in outcome.mismatch.message


@pytest.mark.parametrize("gradients", [True, False])
def test_the_grading_sandbox_takes_a_functions_gradients_when_its_exercise_asks(gradients):
    exercise = find_exercise("layer_norm")
    prepared = prepare_cases(exercise, VISIBLE_SEED, False, CPU)[0]
    case_input = _case_input(prepared)
    produced = _produce(Task("layer_norm", "function", (), [case_input], gradients), layer_norm_detached_statistics,
                        case_input, 30.0)
    assert produced.failure is None and (produced.gradients is not None) is gradients
    assert not judge(exercise, prepared, produced).passed  # no gradients sent back is no pass either


def test_a_case_may_compare_its_output_only():
    exercise = find_exercise("softmax")
    context = CaseContext(torch.Generator().manual_seed(VISIBLE_SEED), CPU[0], torch.float64)
    assert [c.label for c in exercise.make_cases(context, False) if not c.gradients] == ["a fully masked row"]
    assert Case("any").gradients


def test_a_hidden_case_that_fails_on_its_gradients_says_so_without_values():
    result = run_check(layer_norm_detached_statistics, "layer_norm", hidden=True, devices=CPU)
    assert not result.passed
    assert "the output is right but its gradients are not" in result.message and "expected" not in result.message


def test_gradients_sent_back_as_anything_but_tensors_fail_without_breaking_the_judge():
    exercise = find_exercise("DecoderLayer")
    prepared = prepare_cases(exercise, VISIBLE_SEED, False, CPU)[0]
    honest = produce(exercise, solution_of(exercise), prepared)
    forged = {**honest.gradients, 7: "seven", "input 1": [1.0, 2.0]}
    outcome = judge(exercise, prepared, _produced({"output": honest.output, "gradients": forged}))
    assert not outcome.passed and outcome.mismatch.stage == "gradients"
