"""Every requirement the notebooks state has a case that fails code breaking it.

Dropout is checked in eval mode and in training mode under a fixed seed; each rule of the
notebook's beam search has a case where breaking it changes the answer; an input changed
in place fails with a message that says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checker import report, run_check
from autograder.exercise import CaseContext
from autograder.exercises.transformer import EXACT_TIE_CASE
from autograder.grading.plan import _case_input
from autograder.harness.dropout import train_with_fixed_masks
from autograder.harness.serve import Task, _produce
from autograder.registry import find_exercise
from autograder.runner import ExerciseRun, judge, prepare_cases
from autograder.seeds import VISIBLE_SEED
from tests.support.notebooks import solution_namespace, solution_of

CPU = [torch.device("cpu")]


def outcomes(name: str, learner, hidden: bool = False) -> list:
    return ExerciseRun(find_exercise(name), learner).run(VISIBLE_SEED, hidden, CPU)


def failed(results: list) -> list:
    return [o for o in results if not o.passed]


# --- dropout ----------------------------------------------------------------------------------------

class FeedForwardDroppingAlways(nn.Module):
    """Functional dropout that ignores the module's mode: it drops in eval mode too."""

    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1, self.w2, self.p = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model), dropout
        self.activation = torch.relu if activation == "relu" else F.gelu

    def forward(self, x):
        return self.w2(F.dropout(self.activation(self.w1(x)), self.p))


class FeedForwardWithoutDropout(FeedForwardDroppingAlways):
    def forward(self, x):
        return self.w2(self.activation(self.w1(x)))


class FeedForwardDroppingTheOutput(FeedForwardDroppingAlways):
    """nn.Dropout, but after w2 instead of after the activation."""

    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__(d_model, d_ff, activation, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.w2(self.activation(self.w1(x))))


def test_dropout_that_ignores_eval_mode_fails_the_eval_case_and_says_why():
    results = outcomes("FeedForward", FeedForwardDroppingAlways)
    assert all(o.passed for o in results if "dropout" not in o.case)
    first = failed(results)[0]
    assert first.case.endswith("eval mode") and not first.training
    message = run_check(FeedForwardDroppingAlways, "FeedForward").message
    assert "in eval mode (module.eval()) dropout does nothing" in message


@pytest.mark.parametrize("learner", [FeedForwardWithoutDropout, FeedForwardDroppingTheOutput])
def test_dropout_missing_or_misplaced_fails_only_the_training_case(learner):
    results = outcomes("FeedForward", learner)
    assert failed(results) and all(o.training for o in failed(results))
    message = run_check(learner, "FeedForward").message
    assert "in training mode (module.train(), dropout active) your output must equal the course's" in message
    assert "nn.Dropout exactly where the notebook says, and only there" in message


def test_a_residual_block_dropping_its_input_fails_in_training_mode():
    base = solution_of(find_exercise("ResidualConnection"))

    class DropsTheInput(base):
        def forward(self, x, sublayer):
            return super().forward(self.dropout(x), sublayer)

    assert failed(outcomes("ResidualConnection", DropsTheInput))
    assert all(o.training for o in failed(outcomes("ResidualConnection", DropsTheInput)))


def test_attention_returning_the_dropped_weights_fails_in_training_mode():
    base = solution_of(find_exercise("MultiHeadAttention"))
    namespace = solution_namespace("03-multihead")

    class ReturnsDroppedWeights(base):
        def forward(self, query, key, value, mask=None):
            q, k, v = (namespace.split_heads(proj(t), self.n_heads)
                       for proj, t in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
            _, weights = namespace.scaled_dot_product_attention(q, k, v, mask)
            dropped = self.dropout(weights)
            return self.out_proj(namespace.merge_heads(dropped @ v)), dropped

    results = failed(outcomes("MultiHeadAttention", ReturnsDroppedWeights))
    assert results and all(o.training for o in results)


def test_an_encoder_layer_whose_feed_forward_lacks_dropout_fails_in_training_mode():
    namespace = solution_namespace("05-encoder-decoder")
    base = namespace.EncoderLayer

    class ForgetsDropoutInTheFeedForward(base):
        def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
            super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
            self.ff = namespace.FeedForward(d_model, d_ff)

    results = failed(outcomes("EncoderLayer", ForgetsDropoutInTheFeedForward))
    assert results and all(o.training for o in results)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "FeedForward", "ResidualConnection", "EncoderLayer",
                                  "DecoderLayer", "Encoder", "Decoder"])
def test_every_module_with_dropout_is_checked_in_eval_and_training_mode_and_the_solution_passes(name):
    exercise = find_exercise(name)
    for hidden in (False, True):
        context = CaseContext(torch.Generator().manual_seed(VISIBLE_SEED), CPU[0], torch.float64)
        cases = exercise.make_cases(context, hidden)
        assert any(c.training for c in cases) and any(c.label.endswith("eval mode") for c in cases)
    results = outcomes(name, solution_of(exercise)) + outcomes(name, solution_of(exercise), hidden=True)
    assert all(o.passed for o in results)


def test_a_module_in_training_mode_draws_the_same_masks_at_every_call_and_leaves_the_generator_as_it_was():
    module = train_with_fixed_masks(nn.Dropout(0.5), seed=7, device=CPU[0])
    before = torch.random.get_rng_state()
    first, second = module(torch.ones(64)), module(torch.ones(64))
    assert module.training and torch.equal(first, second) and (first == 0).any()
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(RuntimeError):
        module(torch.ones(3, dtype=torch.long))  # dropout of integers raises: the state is restored all the same
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("learner, passes", [("solution", True), (FeedForwardWithoutDropout, False)])
def test_the_grading_sandbox_runs_training_cases_in_training_mode(learner, passes):
    """The case input sent to the sandbox carries the mode and the seed, and the sandbox's call uses them."""
    exercise = find_exercise("FeedForward")
    learner = solution_of(exercise) if learner == "solution" else learner
    prepared = next(p for p in prepare_cases(exercise, VISIBLE_SEED, False, CPU) if p.case.training)
    case_input = _case_input(prepared)
    assert case_input.training and case_input.seed == prepared.case.seed
    produced = _produce(Task("FeedForward", "module", (), [case_input]), learner, case_input, 30.0)
    assert judge(exercise, prepared, produced).passed is passes


# --- beam search ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BeamRules:
    """How a beam search follows the notebook's rules; each field away from its default breaks one."""

    copies_at_start: bool = False  # rule 1: one beam, not beam_width copies of the prefix
    candidates: int = 2  # rule 2: the 2 * beam_width best candidates
    eos_at_any_rank: bool = False  # rule 3: only an EOS ranked below beam_width finishes
    extend_all: bool = False  # rule 3: stop walking once beam_width beams are extended
    keep_all_finished: bool = False  # rule 4: keep the beam_width best finished
    stop: str = "rule"  # rule 5: "rule", "never", "when full", "raw live score", "best finished"
    prefix_in_length: bool = False  # L counts the generated tokens only
    live_normalised: bool = True  # rule 6: live beams join with score / max_new_tokens ** alpha
    arithmetic: torch.dtype = torch.float64  # the notebook's advice; float32 must choose the same


def beam_search(step, prefix, beam_width=4, max_new_tokens=32, eos_id=None, length_penalty=1.0, *,
                rules: BeamRules = BeamRules()):
    """The notebook's beam search, with the rules ``rules`` says."""
    copies = beam_width if rules.copies_at_start else 1
    beams, scores = prefix[None, :].repeat(copies, 1), torch.zeros(copies, dtype=rules.arithmetic)
    offset = prefix.numel() if rules.prefix_in_length else 0
    finished = []
    for length in range(1, max_new_tokens + 1):
        norm = (length + offset) ** length_penalty
        log_probs = torch.log_softmax(step(beams).to(rules.arithmetic), -1)
        candidates = (scores[:, None] + log_probs).flatten()
        top_scores, top_index = candidates.topk(min(rules.candidates * beam_width, candidates.numel()))
        alive = []
        for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
            beam, token = divmod(index, log_probs.size(-1))
            if token != eos_id:
                alive.append((beam, token, score))
            elif rank < beam_width or rules.eos_at_any_rank:
                finished.append((score / norm, torch.cat([beams[beam], beams.new_tensor([token])])))
            if len(alive) == beam_width and not rules.extend_all:
                break
        finished.sort(key=lambda pair: pair[0], reverse=True)
        finished = finished if rules.keep_all_finished else finished[:beam_width]
        parents, tokens, kept = zip(*alive)
        beams = torch.cat([beams[list(parents)], beams.new_tensor(tokens)[:, None]], dim=1)
        scores = scores.new_tensor(kept)
        if _stops(rules.stop, finished, max(kept), norm, beam_width):
            return finished[0][1]
    last = (max_new_tokens + offset) ** length_penalty if rules.live_normalised else 1.0
    finished += [(score / last, beam) for score, beam in zip(scores.tolist(), beams)]
    return max(finished, key=lambda pair: pair[0])[1]


def _stops(stop: str, finished: list, best_live: float, norm: float, beam_width: int) -> bool:
    if stop == "never" or len(finished) < beam_width:
        return False
    live = best_live if stop == "raw live score" else best_live / norm
    worst = {"best finished": finished[0][0]}.get(stop, finished[-1][0])
    return stop == "when full" or (live < worst if stop == "strictly below" else live <= worst)


BROKEN_RULES = {
    "rule 1: beam_width copies of the prefix to start": BeamRules(copies_at_start=True),
    "rule 2: only beam_width candidates": BeamRules(candidates=1),
    "rule 3: an EOS at any rank finishes": BeamRules(eos_at_any_rank=True),
    "rule 3: every live candidate extends a beam": BeamRules(extend_all=True),
    "rule 4: every finished sequence kept": BeamRules(keep_all_finished=True),
    "rule 5: no early stop": BeamRules(stop="never"),
    "rule 5: stop once beam_width have finished": BeamRules(stop="when full"),
    "rule 5: the live score compared unnormalised": BeamRules(stop="raw live score"),
    "rule 5: compared with the best finished": BeamRules(stop="best finished"),
    "rule 5: a live beam level with the worst finished goes on": BeamRules(stop="strictly below"),
    "L counts the prefix": BeamRules(prefix_in_length=True),
    "rule 6: live beams join unnormalised": BeamRules(live_normalised=False),
}


def _learner(rules: BeamRules):
    def learner(step, prefix, beam_width=4, max_new_tokens=32, eos_id=None, length_penalty=1.0):
        return beam_search(step, prefix, beam_width, max_new_tokens, eos_id, length_penalty, rules=rules)
    return learner


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("arithmetic", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_the_written_out_search_follows_the_rules_in_either_arithmetic(arithmetic, hidden):
    """float64 is the notebook's advice only: the same search in float32 passes every case, the exact tie too."""
    assert all(o.passed for o in outcomes("beam_search", _learner(BeamRules(arithmetic=arithmetic)), hidden))


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("broken", list(BROKEN_RULES), ids=list(BROKEN_RULES))
def test_breaking_any_rule_of_the_beam_search_fails_a_case_made_for_it(broken, hidden):
    on_rule_cases = [o for o in outcomes("beam_search", _learner(BROKEN_RULES[broken]), hidden) if o.rule]
    first = next((o for o in on_rule_cases if not o.passed), None)
    assert first is not None, f"{broken}: no rule case fails"
    assert f"This case checks a rule the notebook states: {first.rule}" in report(
        find_exercise("beam_search"), on_rule_cases)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("seed, hidden", [(VISIBLE_SEED, False), (1, True), (987, True)])
def test_no_beam_search_case_is_near_a_tie(seed, hidden, dtype):
    """Nudging every logit by up to 1e-6 changes no case's answer, so float32 sums, or sums in another
    order, choose what the reference chooses.

    The one case built on an exact tie (EXACT_TIE_CASE, rule 5's "not above") is left out: a nudge breaks
    its tie on purpose. Its tie holds bit for bit whatever the order or precision of the sums (two candidates
    of one beam with the same logit), which the float32 search above and the case below check instead."""
    exercise = find_exercise("beam_search")
    generator = torch.Generator().manual_seed(0)
    for case in exercise.make_cases(CaseContext(torch.Generator().manual_seed(seed), CPU[0], dtype), hidden):
        if case.label == EXACT_TIE_CASE:
            continue
        step, prefix = case.args
        expected = exercise.reference(step, prefix, **case.kwargs)
        for _ in range(5):
            noise = torch.rand(step.table.shape, generator=generator, dtype=torch.float64) * 2e-6 - 1e-6
            nudged = type(step)(step.table.double() + noise)
            assert torch.equal(exercise.reference(nudged, prefix, **case.kwargs), expected), case.label


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("arithmetic", [torch.float64, torch.float32], ids=["in float64", "in float32"])
def test_the_exact_tie_case_is_level_in_any_arithmetic_and_only_not_above_stops_there(dtype, arithmetic):
    exercise = find_exercise("beam_search")
    context = CaseContext(torch.Generator().manual_seed(VISIBLE_SEED), CPU[0], dtype)
    case = next(c for c in exercise.make_cases(context, False) if c.label == EXACT_TIE_CASE)
    step, prefix = case.args
    after_1 = torch.log_softmax(step(torch.tensor([[0, 1]])).to(arithmetic), -1)[0]
    assert after_1[5] == after_1[3]  # EOS and token 3: one finishes, one lives on, with the same score
    rules = BeamRules(arithmetic=arithmetic)
    follows = beam_search(step, prefix, **case.kwargs, rules=rules)
    goes_on = beam_search(step, prefix, **case.kwargs, rules=BeamRules(stop="strictly below", arithmetic=arithmetic))
    assert follows.tolist() == exercise.reference(step, prefix, **case.kwargs).tolist() == [0, 5]
    assert goes_on.tolist() == [0, 1, 3, 3, 3]


# --- top-p at the boundary --------------------------------------------------------------------------

def top_p(logits, p, *, compare=torch.ge, stable=False, exclusive=False, arithmetic=None, exp_sum=False,
          shifted=False):
    """A nucleus filter written out: sorted probabilities, the mass before each token compared with p, the mask
    scattered back. ``compare=torch.gt`` and ``shifted`` (remove where the cumulative sum *including* the token
    is above p, shifted one to the right) keep a token whose predecessors hold exactly p; the other options are
    honest: a stable sort, an exclusive cumulative sum, float64 arithmetic, exp / sum without the max."""
    x = logits if arithmetic is None else logits.to(arithmetic)
    probs = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True) if exp_sum else torch.softmax(x, -1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=stable)
    if shifted:
        above = sorted_probs.cumsum(-1) > p
        remove = torch.cat([torch.zeros_like(above[..., :1]), above[..., :-1]], -1)
    elif exclusive:
        before = torch.cat([torch.zeros_like(sorted_probs[..., :1]), sorted_probs.cumsum(-1)[..., :-1]], -1)
        remove = compare(before, p)
    else:
        remove = compare(sorted_probs.cumsum(-1) - sorted_probs, p)
    return logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), -math.inf)


HONEST_TOP_P = {
    "sorted probabilities, stable sort, scatter": dict(stable=True),
    "an exclusive cumulative sum": dict(exclusive=True, stable=True),
    "float64 arithmetic": dict(arithmetic=torch.float64),
    "exp / sum without the max": dict(exp_sum=True),
}
WRONG_TOP_P = {"(cumsum - probs) > p": dict(compare=torch.gt), "cumsum > p, shifted right": dict(shifted=True)}


def _top_p_learner(options):
    def learner(logits, p):
        return top_p(logits, p, **options)
    return learner


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("honest", list(HONEST_TOP_P), ids=list(HONEST_TOP_P))
def test_honest_top_p_filters_pass_the_exact_boundary_cases(honest, hidden):
    assert all(o.passed for o in outcomes("top_p_filter", _top_p_learner(HONEST_TOP_P[honest]), hidden))


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("wrong", list(WRONG_TOP_P), ids=list(WRONG_TOP_P))
def test_a_top_p_filter_keeping_a_token_whose_predecessors_hold_exactly_p_fails(wrong, hidden):
    results = outcomes("top_p_filter", _top_p_learner(WRONG_TOP_P[wrong]), hidden)
    assert failed(results) and all(o.rule for o in failed(results))
    assert {o.dtype for o in failed(results)} == {"float64", "float32"}
    assert "a token whose predecessors hold exactly p is removed (>=, not >)" in report(
        find_exercise("top_p_filter"), results)


# --- masks per query, and keys of the query's length -------------------------------------------------

def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None, *, mask_per_key=False,
                          keys_from_x_at_equal_lengths=False):
    """Cross-attention with einsum, heads kept as an axis; the options are two wrong versions: the mask
    reshaped to ``(B, 1, 1, Lk)`` (a padding mask only) and keys and values taken from ``x`` when the lengths
    agree (self-attention told apart from cross-attention by the shapes)."""
    (batch, q_len, d_model), k_len = x.shape, memory.shape[1]
    d_head = d_model // n_heads
    if keys_from_x_at_equal_lengths and q_len == k_len:
        memory = x
    q = (x @ w_q).reshape(batch, q_len, n_heads, d_head)
    k = (memory @ w_k).reshape(batch, k_len, n_heads, d_head)
    v = (memory @ w_v).reshape(batch, k_len, n_heads, d_head)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d_head)
    if mask is not None:
        scores = np.where(mask.reshape(batch, 1, 1, k_len) if mask_per_key else mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    exps = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = exps.sum(axis=-1, keepdims=True)
    weights = exps / np.where(total > 0, total, 1.0)
    heads = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, q_len, d_model)
    return (heads @ w_o).astype(x.dtype), weights.astype(x.dtype)


def _cross_attention_learner(**options):
    def learner(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
        return numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask, **options)
    return learner


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
def test_cross_attention_with_einsum_passes(hidden):
    assert all(o.passed for o in outcomes("numpy_cross_attention", _cross_attention_learner(), hidden))


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("wrong, rule", [("mask_per_key", "it may differ from query to query"),
                                         ("keys_from_x_at_equal_lengths", "also when q_len == k_len")])
def test_cross_attention_reshaping_the_mask_or_reading_x_at_equal_lengths_fails(wrong, rule, hidden):
    results = outcomes("numpy_cross_attention", _cross_attention_learner(**{wrong: True}), hidden)
    assert failed(results) and all(o.rule for o in failed(results))
    assert rule in report(find_exercise("numpy_cross_attention"), results)


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
def test_an_encoder_layer_reshaping_its_mask_to_one_per_key_fails(hidden):
    solution = solution_of(find_exercise("numpy_encoder_layer"))

    def learner(x, params, n_heads, mask=None):
        if mask is not None:
            mask = mask.reshape(x.shape[0], 1, 1, x.shape[1])
        return solution(x, params, n_heads, mask)

    results = failed(outcomes("numpy_encoder_layer", learner, hidden))
    assert results and all("a mask per query" in o.case for o in results)


def _multi_head_attention_variant(*, values_from_key=False, keys_from_query_at_equal_lengths=False):
    base = solution_of(find_exercise("MultiHeadAttention"))

    class Variant(base):
        def forward(self, query, key, value, mask=None):
            if keys_from_query_at_equal_lengths and key.shape == query.shape:
                key = value = query
            return super().forward(query, key, key if values_from_key else value, mask)

    return Variant


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("wrong", ["values_from_key", "keys_from_query_at_equal_lengths"])
def test_attention_taking_values_from_the_keys_or_keys_from_the_query_fails(wrong, hidden):
    results = failed(outcomes("MultiHeadAttention", _multi_head_attention_variant(**{wrong: True}), hidden))
    assert results and any(o.rule for o in results)
    # Where one tensor is query, key and value the output is right, but the input it ignores gets no gradient.
    assert all(o.rule or o.mismatch.message.startswith("no gradient reaches the input") for o in results)


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
def test_a_decoder_layer_reading_x_when_memory_has_its_length_fails(hidden):
    base = solution_of(find_exercise("DecoderLayer"))

    class ReadsXAtEqualLengths(base):
        def forward(self, x, memory, tgt_mask=None, memory_mask=None):
            return super().forward(x, x if memory.shape == x.shape else memory, tgt_mask, memory_mask)

    results = failed(outcomes("DecoderLayer", ReadsXAtEqualLengths, hidden))
    assert results and all("the same length" in o.case for o in results)


# --- inputs changed in place ------------------------------------------------------------------------

def top_k_filter_in_place(logits, k):
    if k < logits.size(-1):
        kth = logits.topk(k, dim=-1).values[..., -1:]
        logits.masked_fill_(logits < kth, -math.inf)
    return logits


def numpy_top_k_filter_in_place(logits, k):
    if k < logits.shape[-1]:
        logits[logits < np.sort(logits, axis=-1)[..., -k, None]] = -np.inf
    return logits


@pytest.mark.parametrize("name, learner", [("top_k_filter", top_k_filter_in_place),
                                           ("numpy_top_k_filter", numpy_top_k_filter_in_place)])
def test_a_top_k_filter_that_changes_its_input_fails_and_says_so(name, learner):
    result = run_check(learner, name)
    assert not result.passed
    assert "your code changed its input `logits` in place" in result.message
    assert {o.mismatch.stage for o in result.outcomes if not o.passed} == {"input"}
