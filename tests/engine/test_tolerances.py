"""Tolerances derived from the numerics: honest work in another order passes, wrong work still fails.

Each honest variant below computes what the reference computes, in a different but correct
formulation: another summation order, fused or split operations, ``rsqrt`` for ``1 / sqrt``,
``einsum`` for ``matmul``, the scale applied to ``q``, to ``k`` or to the scores, float64
inside then cast back. Each must pass every visible and hidden case of its exercise
(:mod:`autograder.tolerance` derives how close is close enough). The wrong variants are
small, real mistakes that the derived tolerance must not swallow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.compare import compare
from autograder.exercise import Case, CaseContext
from autograder.registry import EXERCISES
from autograder.runner import ExerciseRun, prepare_cases
from autograder.seeds import VISIBLE_SEED
from autograder.tolerance import SAFETY, Tolerance, derive, eps_of

CPU = [torch.device("cpu")]
HIDDEN_SEEDS = (1234, 20_250_101)


def outcomes(name: str, learner, seeds=(None, *HIDDEN_SEEDS)) -> list:
    """Every case of exercise ``name`` for ``learner``: the visible ones, then the hidden ones of each seed."""
    found = []
    for seed in seeds:
        found += ExerciseRun(EXERCISES[name], learner).run(VISIBLE_SEED if seed is None else seed, seed is not None,
                                                           CPU)
    return found


def failures(name: str, learner) -> list[str]:
    return [f"{o.case} ({o.dtype}): {o.mismatch.message}" for o in outcomes(name, learner) if not o.passed]


# --- softmax ------------------------------------------------------------------------------------------

def softmax_log_sum_exp(x, dim=-1, temperature=1.0):
    """exp(x - logsumexp(x)): the log-domain form."""
    x = x * (1.0 / temperature)
    top = x.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    lse = top + torch.log(torch.exp(x - top).sum(dim=dim, keepdim=True))
    return torch.where(torch.isfinite(lse), torch.exp(x - lse), torch.zeros_like(x))


def softmax_in_float64(x, dim=-1, temperature=1.0):
    """The stable softmax computed in float64, cast back to the input's dtype."""
    y = x.double() / temperature
    top = y.amax(dim=dim, keepdim=True).nan_to_num(0.0, posinf=0.0, neginf=0.0)
    exps = (y - top).exp()
    total = exps.sum(dim=dim, keepdim=True)
    return (exps / total.clamp_min(1e-300)).to(x.dtype)


def softmax_reciprocal_and_matmul_sum(x, dim=-1, temperature=1.0):
    """The denominator summed by a matrix product with ones, then multiplied by its reciprocal."""
    moved = (x / temperature).movedim(dim, -1)
    top = moved.max(dim=-1, keepdim=True).values
    exps = torch.exp(moved - torch.where(top == -math.inf, torch.zeros_like(top), top))
    total = exps @ torch.ones(exps.size(-1), 1, dtype=x.dtype, device=x.device)
    return (exps * torch.where(total > 0, 1.0 / total, torch.zeros_like(total))).movedim(-1, dim)


# --- scaled dot-product attention -------------------------------------------------------------------

def _masked(scores, mask):
    return scores if mask is None else torch.where(mask, scores, torch.full_like(scores, -math.inf))


def attention_scale_q_first_einsum(q, k, v, mask=None):
    """q scaled before the product, einsum for both products, softmax in the log domain."""
    scores = _masked(torch.einsum("...qd,...kd->...qk", q / math.sqrt(q.size(-1)), k), mask)
    weights = softmax_log_sum_exp(scores)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


def attention_scale_keys(q, k, v, mask=None):
    """q @ (k^T * d^-0.5): the scale folded into the keys, and a reciprocal-sum softmax."""
    scores = _masked(q @ (k.transpose(-2, -1) * q.size(-1) ** -0.5), mask)
    weights = softmax_reciprocal_and_matmul_sum(scores)
    return torch.matmul(weights, v), weights


def attention_in_float64(q, k, v, mask=None):
    """Everything in float64, both outputs cast back."""
    scores = _masked(q.double() @ k.double().mT / math.sqrt(q.size(-1)), mask)
    weights = softmax_in_float64(scores)
    return (weights @ v.double()).to(q.dtype), weights.to(q.dtype)


# --- layer_norm and rms_norm --------------------------------------------------------------------------

def layer_norm_var_mean_rsqrt(x, weight, bias, eps=1e-5):
    """torch.var_mean, then rsqrt and a fused multiply-add."""
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return torch.addcmul(bias, (x - mean) * torch.rsqrt(var + eps), weight)


def layer_norm_welford(x, weight, bias, eps=1e-5):
    """Welford's running mean and variance, one feature at a time."""
    mean = torch.zeros_like(x[..., :1])
    m2 = torch.zeros_like(mean)
    for i in range(x.size(-1)):
        delta = x[..., i:i + 1] - mean
        mean = mean + delta / (i + 1)
        m2 = m2 + delta * (x[..., i:i + 1] - mean)
    scale = weight / torch.sqrt(m2 / x.size(-1) + eps)
    return (x - mean) * scale + bias


def layer_norm_in_float64(x, weight, bias, eps=1e-5):
    y = x.double()
    centred = y - y.mean(-1, keepdim=True)
    normed = centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return (normed * weight.double() + bias.double()).to(x.dtype)


def rms_norm_divide_sqrt(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rms_norm_from_the_norm(x, weight, eps=1e-6):
    """x * sqrt(d) / sqrt(||x||^2 + d * eps): the same quantity, rearranged."""
    d = x.size(-1)
    return weight * x * math.sqrt(d) / torch.sqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 + d * eps)


def rms_norm_power(x, weight, eps=1e-6):
    return (weight * x) * (torch.einsum("...d,...d->...", x, x)[..., None] / x.size(-1) + eps) ** -0.5


def rms_norm_in_float64(x, weight, eps=1e-6):
    y = x.double()
    return (y * torch.rsqrt(y.square().mean(-1, keepdim=True) + eps) * weight.double()).to(x.dtype)


# --- modules ------------------------------------------------------------------------------------------

class MultiHeadAttentionEinsum(nn.Module):
    """All heads in one einsum, the scale on the queries, the heads merged by an einsum with out_proj."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, query, key, value, mask=None):
        h = self.n_heads
        q = self.q_proj(query).unflatten(-1, (h, -1))  # (B, Lq, h, d_head)
        k = self.k_proj(key).unflatten(-1, (h, -1))
        v = self.v_proj(value).unflatten(-1, (h, -1))
        scores = torch.einsum("bqhd,bkhd->bhqk", q * q.size(-1) ** -0.5, k)
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        weights = softmax_log_sum_exp(scores)
        heads = torch.einsum("bhqk,bkhd->bqhd", F.dropout(weights, self.dropout, self.training), v)
        w = self.out_proj.weight.unflatten(1, (h, -1))  # (d_model, h, d_head)
        return torch.einsum("bqhd,ohd->bqo", heads, w) + self.out_proj.bias, weights


class MultiHeadAttentionInFloat64(nn.Module):
    """The plain formulation, its attention computed in float64 and cast back (dropout in the inputs' dtype)."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, query, key, value, mask=None):
        b, lq, d = query.shape
        split = lambda t: t.view(b, t.size(1), self.n_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(query)), split(self.k_proj(key)), split(self.v_proj(value))
        scores = _masked(q.double() @ k.double().mT / math.sqrt(q.size(-1)), mask)
        weights = softmax_in_float64(scores).to(q.dtype)
        dropped = F.dropout(weights, self.dropout, self.training)  # in the inputs' dtype: the same mask
        out = (dropped.double() @ v.double()).to(q.dtype)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d)), weights


class FeedForwardAddmm(nn.Module):
    """x @ W^T + b written out with torch.addmm on the flattened positions; ReLU by clamp."""

    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1, self.w2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        flat = x.reshape(-1, x.size(-1))
        hidden = torch.addmm(self.w1.bias, flat, self.w1.weight.t())
        if self.activation == "relu":
            hidden = hidden.clamp_min(0)
        else:
            hidden = hidden * 0.5 * torch.erfc(-hidden * (1 / math.sqrt(2)))
        return torch.addmm(self.w2.bias, self.dropout(hidden), self.w2.weight.t()).reshape(x.shape)


class FeedForwardEinsum(nn.Module):
    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1, self.w2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.act = torch.relu if activation == "relu" else (lambda h: h * (1 + torch.erf(h / math.sqrt(2))) / 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        hidden = self.act(torch.einsum("...i,oi->...o", x, self.w1.weight) + self.w1.bias)
        return torch.einsum("...i,oi->...o", self.dropout(hidden), self.w2.weight) + self.w2.bias


# --- label_smoothing_loss -------------------------------------------------------------------------------

def label_smoothing_smoothed_target(logits, target, smoothing=0.1, ignore_index=-100):
    """-sum(q * log p) with the smoothed target distribution q built explicitly; mean over kept positions."""
    vocab = logits.size(-1)
    flat, target = logits.reshape(-1, vocab), target.reshape(-1)
    log_p = flat - torch.logsumexp(flat, dim=-1, keepdim=True)
    keep = target != ignore_index
    one_hot = F.one_hot(torch.where(keep, target, 0), vocab).to(logits.dtype)
    q = one_hot * (1 - smoothing) + smoothing / vocab
    per_position = -(q * log_p).nan_to_num(0.0, neginf=0.0).sum(-1) if smoothing == 0 else -(q * log_p).sum(-1)
    if not keep.any():
        return logits.new_zeros(())
    return per_position[keep].mean()


def label_smoothing_in_float64(logits, target, smoothing=0.1, ignore_index=-100):
    """The two-term form in float64, positions in another order (reversed), cast back."""
    vocab = logits.size(-1)
    flat, target = logits.reshape(-1, vocab).double().flip(0), target.reshape(-1).flip(0)
    top = flat.amax(-1, keepdim=True)
    log_p = flat - top - (flat - top).exp().sum(-1, keepdim=True).log()
    keep = target != ignore_index
    nll = -log_p.gather(-1, target.clamp_min(0).masked_fill(~keep, 0)[:, None])[:, 0]
    per_position = (1 - smoothing) * nll + smoothing * -log_p.mean(-1) if smoothing else nll
    total = (per_position * keep).sum()
    return (total / max(int(keep.sum()), 1)).to(logits.dtype)


# --- numpy_attention ------------------------------------------------------------------------------------

def numpy_attention_einsum_log_domain(q, k, v, mask=None):
    scores = np.einsum("...qd,...kd->...qk", q, k) / np.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0).astype(q.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):  # a fully masked row: log(0), then -inf - -inf
        lse = top + np.log(np.sum(np.exp(scores - top), axis=-1, keepdims=True))
        weights = np.where(np.isfinite(lse), np.exp(scores - lse), 0).astype(q.dtype)
    return np.einsum("...qk,...kd->...qd", weights, v), weights


def numpy_attention_in_float64(q, k, v, mask=None):
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    scores = (q64 * q.shape[-1] ** -0.5) @ np.swapaxes(k64, -1, -2)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    exps = np.exp(scores - np.where(np.isfinite(top), top, 0))
    weights = exps / np.maximum(exps.sum(axis=-1, keepdims=True), 1e-300)
    return (weights @ v64).astype(q.dtype), weights.astype(q.dtype)


# --- the other lessons' exercises -------------------------------------------------------------------------

def gelu_erfc(x):
    """x * Phi(x) with Phi from erfc, exact also far in the negative tail."""
    return x * torch.special.erfc(-x * (1 / math.sqrt(2))) / 2


def attention_scores_einsum(q, k):
    return torch.einsum("...qd,...kd->...qk", q * q.size(-1) ** -0.5, k)


def attention_entropy_xlogy(weights):
    return -torch.special.xlogy(weights, weights).sum(dim=-1)


def apply_rotary_complex(x, positions=None, base=10000.0):
    """The pairs as complex numbers, turned by e^(i theta) with the angles in float64."""
    half = x.size(-1) // 2
    positions = torch.arange(x.size(-2), device=x.device) if positions is None else positions
    inv_freq = 1.0 / base ** (torch.arange(0, 2 * half, 2, dtype=torch.float64, device=x.device) / (2 * half))
    angles = positions.double()[:, None] * inv_freq
    turn = torch.polar(torch.ones_like(angles), angles).to(torch.complex128 if x.dtype == torch.float64 else
                                                           torch.complex64)
    z = torch.complex(x[..., :half], x[..., half:]) * turn
    return torch.cat([z.real, z.imag], dim=-1)


def sinusoidal_positional_encoding_direct(seq_len, d_model, *, dtype=torch.float32, device=None):
    """pos / 10000^(2i / d) in the requested dtype (the reference goes through exp and log)."""
    position = torch.arange(seq_len, dtype=dtype, device=device)[:, None]
    angles = position / 10000.0 ** (torch.arange(0, d_model, 2, dtype=dtype, device=device) / d_model)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def noam_lr_rearranged(step, d_model, warmup):
    step = max(step, 1)
    return min(1 / math.sqrt(step), step / warmup ** 1.5) / math.sqrt(d_model)


def numpy_layer_norm_var(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) * (1 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)) * weight + bias


HONEST = {
    "softmax": [softmax_log_sum_exp, softmax_in_float64, softmax_reciprocal_and_matmul_sum],
    "scaled_dot_product_attention": [attention_scale_q_first_einsum, attention_scale_keys, attention_in_float64],
    "layer_norm": [layer_norm_var_mean_rsqrt, layer_norm_welford, layer_norm_in_float64],
    "rms_norm": [rms_norm_divide_sqrt, rms_norm_from_the_norm, rms_norm_power, rms_norm_in_float64],
    "MultiHeadAttention": [MultiHeadAttentionEinsum, MultiHeadAttentionInFloat64],
    "FeedForward": [FeedForwardAddmm, FeedForwardEinsum],
    "label_smoothing_loss": [label_smoothing_smoothed_target, label_smoothing_in_float64],
    "numpy_attention": [numpy_attention_einsum_log_domain, numpy_attention_in_float64],
    "gelu": [gelu_erfc],
    "attention_scores": [attention_scores_einsum],
    "attention_entropy": [attention_entropy_xlogy],
    "apply_rotary": [apply_rotary_complex],
    "sinusoidal_positional_encoding": [sinusoidal_positional_encoding_direct],
    "noam_lr": [noam_lr_rearranged],
    "numpy_layer_norm": [numpy_layer_norm_var],
}
HONEST_CASES = [(name, variant) for name, variants in HONEST.items() for variant in variants]


@pytest.mark.parametrize("name, variant", HONEST_CASES, ids=[v.__name__ for _, v in HONEST_CASES])
def test_an_honest_formulation_passes_every_case(name, variant):
    assert not failures(name, variant)


# --- wrong work still fails ----------------------------------------------------------------------------

def rms_norm_eps_1e5(x, weight, eps=1e-6):
    """A wrong constant too small for float32 to see: eps 1e-5 for 1e-6 (float64 must catch it)."""
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + (1e-5 if eps == 1e-6 else eps)) * weight


def layer_norm_eps_outside(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / ((x - mean).pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight + bias


def layer_norm_one_pass_variance(x, weight, bias, eps=1e-5):
    """mean(x^2) - mean(x)^2: right on paper, catastrophically cancelling when the mean is large."""
    mean = x.mean(-1, keepdim=True)
    var = (x * x).mean(-1, keepdim=True) - mean * mean
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def attention_scaled_by_sqrt_d_plus_1(q, k, v, mask=None):
    scores = _masked(q @ k.mT / math.sqrt(q.size(-1) + 1), mask)
    weights = softmax_log_sum_exp(scores)
    return weights @ v, weights


def softmax_sum_of_the_other_dimension(x, dim=-1, temperature=1.0):
    """Normalised over the last dimension whatever `dim` says."""
    return softmax_log_sum_exp(x, -1, temperature)


def label_smoothing_over_other_classes(logits, target, smoothing=0.1, ignore_index=-100):
    vocab = logits.size(-1)
    return label_smoothing_smoothed_target(logits, target, smoothing * vocab / (vocab - 1), ignore_index)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def numpy_attention_without_scaling(q, k, v, mask=None):
    return numpy_attention_in_float64(q * math.sqrt(q.shape[-1]), k, v, mask)


class FeedForwardWithoutSecondBias(FeedForwardEinsum):
    def forward(self, x):
        return super().forward(x) - self.w2.bias


def softmax_in_float32(x, dim=-1, temperature=1.0):
    """Works in float32 whatever the input: off by float32's rounding on float64 inputs."""
    return softmax_in_float64(x.float(), dim, temperature).to(x.dtype)


WRONG = {
    "rms_norm": [rms_norm_eps_1e5],
    "layer_norm": [layer_norm_eps_outside, layer_norm_one_pass_variance],
    "scaled_dot_product_attention": [attention_scaled_by_sqrt_d_plus_1],
    "softmax": [softmax_sum_of_the_other_dimension, softmax_in_float32],
    "label_smoothing_loss": [label_smoothing_over_other_classes],
    "gelu": [gelu_tanh],
    "numpy_attention": [numpy_attention_without_scaling],
    "FeedForward": [FeedForwardWithoutSecondBias],
}
WRONG_CASES = [(name, variant) for name, variants in WRONG.items() for variant in variants]


@pytest.mark.parametrize("name, variant", WRONG_CASES, ids=[v.__name__ for _, v in WRONG_CASES])
def test_a_wrong_variant_fails_the_visible_cases(name, variant):
    assert failures_of(name, variant, seeds=(None,))


def failures_of(name: str, learner, seeds) -> list:
    return [o for o in outcomes(name, learner, seeds) if not o.passed]


def test_a_wrong_constant_below_float32_resolution_fails_in_float64_only():
    failed = failures_of("rms_norm", rms_norm_eps_1e5, seeds=(None,))
    assert {o.dtype for o in failed} == {"float64"}


def test_the_one_pass_variance_fails_only_far_from_the_origin_and_is_named():
    """Decided in docs/grading.md: mean(x^2) - mean(x)^2 is an unstable algorithm, not another order of
    operations. It passes inputs near the origin and fails the case with a large mean, in both dtypes,
    where the report names the mistake."""
    for seeds in ((None,), HIDDEN_SEEDS):
        failed = failures_of("layer_norm", layer_norm_one_pass_variance, seeds)
        assert {o.case for o in failed} == {"a large mean (300) and a spread of 1"}
        assert {o.dtype for o in failed} == {"float32", "float64"}
        assert all("variance as mean(x^2) - mean(x)^2" in o.matching_mistakes for o in failed)


def test_float32_arithmetic_on_float64_inputs_is_named_in_the_report():
    failed = failures_of("softmax", softmax_in_float32, seeds=(None,))
    assert failed and {o.dtype for o in failed} == {"float64"}
    assert all("float32's rounding" in o.mismatch.message for o in failed)


def test_a_wrong_answer_is_not_blamed_on_float32():
    failed = failures_of("layer_norm", layer_norm_one_pass_variance, seeds=(None,))
    assert not any("float32's rounding" in o.mismatch.message for o in failed)


def test_the_report_shows_the_derived_tolerance():
    message = failures_of("gelu", gelu_tanh, seeds=(None,))[0].mismatch.message
    assert "allowed: atol=" in message and "rtol=" in message
    assert "atol=1e-05" not in message and "atol=1e-09" not in message  # not the old fixed numbers


# --- the derivation itself -------------------------------------------------------------------------------

def test_a_tolerance_is_a_few_ulps_of_the_answer_for_a_well_conditioned_case():
    x = torch.linspace(0.5, 2.0, 7, dtype=torch.float32)
    tolerance = derive(lambda fn: convert_and_call(torch.sqrt, x, fn), torch.sqrt(x), torch.float32)
    eps = eps_of(torch.float32)
    assert SAFETY * eps * 2 ** 0.5 <= tolerance.atol <= 4 * SAFETY * eps * 2 ** 0.5
    assert tolerance.rtol == pytest.approx(SAFETY * eps)


def test_large_inputs_seen_through_a_logarithm_do_not_loosen_the_tolerance():
    sizes = torch.tensor([1e3, 1e5, 1e8], dtype=torch.float64)
    tolerance = derive(lambda fn: convert_and_call(torch.log, sizes, fn), torch.log(sizes), torch.float64)
    assert tolerance.rtol == pytest.approx(SAFETY * eps_of(torch.float64))


def convert_and_call(fn, x, tensor_fn):
    from autograder.tolerance import convert
    return fn(convert(x, tensor_fn))


def test_logits_far_from_zero_get_a_wider_tolerance_than_small_ones():
    """exp(x - logsumexp(x)) rounds at the logits' scale: softmax(x + 1000) is softmax(x), computed less exactly."""
    def softmax(x):
        return torch.exp(x - x.amax(-1, keepdim=True)) / torch.exp(x - x.amax(-1, keepdim=True)).sum(-1, keepdim=True)
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(4, 6, generator=generator)
    tolerances = [derive(lambda fn, x=x: convert_and_call(softmax, x, fn), softmax(x), torch.float32)
                  for x in (small, small + 1000)]
    assert tolerances[1].rtol > 100 * tolerances[0].rtol


def test_a_tolerance_per_leaf_and_none_for_discrete_ones():
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def answer(fn):
        y = convert_and_call(lambda t: t * 1000.0, x, fn)
        return y.argmax(-1), {"scaled": y, "small": y / 1e6}, 2.5
    tree = derive(answer, answer(lambda t: t), torch.float64)
    assert tree[0] is None and isinstance(tree[2], Tolerance)
    assert tree[1]["scaled"].atol > 1e5 * tree[1]["small"].atol
    assert compare(answer(lambda t: t), answer(lambda t: t), tree) is None


def test_a_probe_that_draws_other_random_numbers_is_left_out():
    """A reference whose answer depends on a random draw (dropout without fixed masks) moves by far more
    than rounding between probes: the tolerance stays a rounding tolerance."""
    x = torch.randn(50, dtype=torch.float32, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    expected = F.dropout(x, 0.5)
    tolerance = derive(lambda fn: convert_and_call(lambda t: F.dropout(t, 0.5), x, fn), expected, torch.float32)
    assert tolerance.atol <= SAFETY * eps_of(torch.float32) * float(expected.abs().max())


def test_nothing_floating_needs_no_tolerance():
    ids = torch.tensor([1, 2, 3])
    assert derive(lambda fn: ids + 1, ids + 1, torch.float32) is None


def test_a_case_asking_for_a_dtype_is_probed_in_float64():
    """A ``dtype=`` argument follows the probes: the float64 answer of a float32 table is a float64 table."""
    def table(n, *, dtype):
        return (torch.arange(n, dtype=dtype)[:, None] * torch.tensor([0.1, 1.7], dtype=dtype)).sin()
    seen = []

    def answer(fn):
        from autograder.tolerance import convert
        kwargs = convert({"dtype": torch.float32}, fn)
        seen.append(kwargs["dtype"])
        return table(40, **kwargs)
    derive(answer, table(40, dtype=torch.float32), torch.float32)
    assert torch.float64 in seen


def attention_entropy_with_a_safety_constant(weights):
    """log(w + 1e-9): a guard that changes the answer by about 1e-9, which float64 cases see."""
    return -(weights * torch.log(weights + 1e-9)).sum(dim=-1)


def test_a_safety_constant_inside_a_log_fails_in_float64_with_a_hint():
    failed = failures_of("attention_entropy", attention_entropy_with_a_safety_constant, seeds=(None,))
    assert failed and {o.dtype for o in failed} == {"float64"}
    assert any("small constant added for safety" in o.mismatch.message for o in failed)
