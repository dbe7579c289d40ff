"""Lesson 04-ffn-norm: feed-forward networks, GELU, SwiGLU, LayerNorm, RMSNorm, residual connections."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import tfcourse.np as tnp
from autograder.exercise import Case, CaseContext, Exercise, Mistake, with_dropout
from tfcourse import layers

LESSON = "04-ffn-norm"
GELU_APIS = ("torch.nn.functional.gelu", "torch.nn.GELU")
LAYER_NORM_APIS = ("torch.nn.functional.layer_norm", "torch.layer_norm", "torch.nn.LayerNorm")
RMS_NORM_APIS = ("torch.nn.functional.rms_norm", "torch.rms_norm", "torch.nn.RMSNorm")


def _on_arrays(torch_fn):
    """The NumPy version of a PyTorch function: array arguments go in as tensors, the result comes back an array."""
    def numpy_fn(*args, **kwargs):
        tensors = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
        return torch_fn(*tensors, **kwargs).numpy()
    return numpy_fn


# --- GELU ---------------------------------------------------------------------------------------

def gelu_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    shapes = [(1,), (3, 5, 7)] if hidden else [(2, 3, 8), (10,), (4, 4)]
    cases = [Case(f"random {shape}", (ctx.randn(*shape, scale=2.0),)) for shape in shapes]
    grid = torch.linspace(-6.0, 6.0, 25, dtype=ctx.dtype, device=ctx.device)
    return cases + [Case("a grid from -6 to 6", (grid,)),
                    Case("zeros", (torch.zeros(2, 3, dtype=ctx.dtype, device=ctx.device),))]


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


GELU = Exercise(
    name="gelu",
    lesson=LESSON,
    reference=layers.gelu,
    gradients=True,
    make_cases=gelu_cases,
    points=1,
    forbidden=GELU_APIS,
    mistakes=(
        Mistake("tanh approximation", _gelu_tanh,
                "this is GPT-2's tanh approximation, off by up to 5e-4. Use the exact form with torch.erf."),
        Mistake("erf of x instead of x / sqrt(2)", lambda x: 0.5 * x * (1.0 + torch.erf(x)),
                "Phi(x) = (1 + erf(x / sqrt(2))) / 2: divide x by sqrt(2) inside erf."),
        Mistake("missing factor 1/2", lambda x: x * (1.0 + torch.erf(x / math.sqrt(2.0))),
                "Phi(x) is (1 + erf(x / sqrt(2))) / 2; without the 1/2 large inputs come out doubled."),
        Mistake("sigmoid approximation", lambda x: x * torch.sigmoid(1.702 * x),
                "x * sigmoid(1.702 x) only approximates GELU. Use the exact form with torch.erf."),
    ),
    hints=(
        "Phi is the standard normal CDF, which the error function gives: Phi(x) is (1 + erf(x / sqrt(2))) / 2.",
        "torch.erf works elementwise on tensors; math.sqrt(2.0) is a plain number.",
        ("return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0))); for large positive x the result is x, for "
         "large negative x it is 0."),
    ),
    difficulty=1,
    minutes=5,
)


# --- feed-forward networks ----------------------------------------------------------------------

def _ffn_sizes(hidden: bool) -> list[tuple[int, int, int, int]]:
    """``(batch, seq, d_model, d_ff)``; the hidden set differs from the visible one."""
    return [(1, 1, 4, 4), (3, 5, 6, 24)] if hidden else [(2, 5, 8, 32), (1, 3, 4, 16), (2, 1, 6, 12)]


def feed_forward_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"relu, x ({b}, {n}, {d}), d_ff {f}", (ctx.randn(b, n, d),), init=(d, f))
             for b, n, d, f in _ffn_sizes(hidden)]
    cases += [Case("gelu, x (2, 4, 8), d_ff 32", (ctx.randn(2, 4, 8),), init=(8, 32, "gelu")),
              Case("relu, 2-D x (5, 8), d_ff 16", (ctx.randn(5, 8),), init=(8, 16))]
    return cases + with_dropout(Case("gelu, x (2, 5, 8), d_ff 24, dropout 0.3", (ctx.randn(2, 5, 8),),
                                     init=(8, 24, "gelu", 0.3)), ctx)


FEED_FORWARD = Exercise(
    name="FeedForward",
    lesson=LESSON,
    reference=layers.FeedForward,
    kind="module",
    make_cases=feed_forward_cases,
    points=2,
    mistakes=(
        Mistake("no activation", lambda module, x: module.w2(module.w1(x)),
                "without a non-linearity the two layers collapse into one linear map. Apply the activation "
                "between w1 and w2."),
        Mistake("activation after w2 as well",
                lambda module, x: module.activation(module.w2(module.activation(module.w1(x)))),
                "the output goes through the activation again. The activation belongs only between w1 and w2."),
        Mistake("ReLU whatever the activation", lambda module, x: module.w2(F.relu(module.w1(x))),
                "activation='gelu' still applies ReLU. Choose the function from the `activation` argument."),
    ),
    hints=(
        ("In __init__: w1, a Linear from d_model to d_ff, w2, a Linear back from d_ff to d_model, and an "
         "nn.Dropout."),
        "Store the activation function: torch.relu for 'relu', your gelu from above for 'gelu'.",
        "forward: return self.w2(self.dropout(self.activation(self.w1(x)))).",
    ),
    difficulty=2,
    minutes=15,
)


def swiglu_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    cases = [Case(f"x ({b}, {n}, {d}), d_ff {f}", (ctx.randn(b, n, d),), init=(d, f))
             for b, n, d, f in _ffn_sizes(hidden)]
    return cases + [Case("2-D x (5, 8), d_ff 16", (ctx.randn(5, 8),), init=(8, 16))]


SWIGLU = Exercise(
    name="SwiGLU",
    lesson=LESSON,
    reference=layers.SwiGLU,
    kind="module",
    make_cases=swiglu_cases,
    points=2,
    mistakes=(
        Mistake("gate and value swapped", lambda module, x: module.w2(F.silu(module.w3(x)) * module.w1(x)),
                "SiLU is applied to w3 x. The gate is w1: w2(silu(w1 x) * w3 x)."),
        Mistake("sigmoid gate instead of SiLU", lambda module, x: module.w2(torch.sigmoid(module.w1(x)) * module.w3(x)),
                "this is GLU's sigmoid gate. SwiGLU uses silu(z) = z * sigmoid(z)."),
        Mistake("no value branch", lambda module, x: module.w2(F.silu(module.w1(x))),
                "the gate multiplies nothing: multiply silu(w1 x) elementwise by the value w3 x."),
    ),
    hints=(
        ("Three bias-free projections: nn.Linear(d_model, d_ff, bias=False) for w1 and w3, "
         "nn.Linear(d_ff, d_model, bias=False) for w2."),
        "silu(z) is z times sigmoid(z) (`torch.nn.functional.silu`); the gate is silu of w1 x, the value w3 x.",
        "forward: return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x)).",
    ),
    difficulty=2,
    minutes=10,
)


def numpy_feed_forward_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    def weights(d: int, f: int) -> tuple[torch.Tensor, ...]:
        return ctx.randn(d, f, scale=d**-0.5), ctx.randn(f, scale=0.5), ctx.randn(f, d, scale=f**-0.5), ctx.randn(d)

    cases = [Case(f"relu, x ({b}, {n}, {d}), d_ff {f}", (ctx.randn(b, n, d), *weights(d, f)))
             for b, n, d, f in _ffn_sizes(hidden)]
    return cases + [Case("gelu, x (2, 4, 8), d_ff 32", (ctx.randn(2, 4, 8), *weights(8, 32)), {"activation": "gelu"})]


def _wrong_numpy_feed_forward(activate: bool = True, bias_after: bool = False, relu_only: bool = False):
    """A wrong FFN: no activation, the first bias added after it, or ReLU for every activation."""
    def feed_forward(x, w1, b1, w2, b2, activation="relu"):
        act = tnp.gelu if activation == "gelu" and not relu_only else tnp.relu
        if not activate:
            hidden = x @ w1 + b1
        elif bias_after:
            hidden = act(x @ w1) + b1
        else:
            hidden = act(x @ w1 + b1)
        return hidden @ w2 + b2
    return feed_forward


NUMPY_FEED_FORWARD = Exercise(
    name="numpy_feed_forward",
    lesson=LESSON,
    reference=tnp.feed_forward,
    make_cases=numpy_feed_forward_cases,
    points=2,
    numpy=True,
    mistakes=(
        Mistake("no activation", _wrong_numpy_feed_forward(activate=False),
                "without a non-linearity the two layers are one linear map. Apply the activation to x @ w1 + b1."),
        Mistake("first bias added after the activation", _wrong_numpy_feed_forward(bias_after=True),
                "b1 is added after the activation. It belongs inside: act(x @ w1 + b1)."),
        Mistake("ReLU whatever the activation", _wrong_numpy_feed_forward(relu_only=True),
                "activation='gelu' still applies ReLU. Choose the function from the `activation` argument."),
    ),
    hints=(
        "x @ w1 multiplies every position's vector at once: (..., d_model) @ (d_model, d_ff) -> (..., d_ff).",
        ("ReLU is np.maximum(h, 0). NumPy has no erf: np.vectorize(math.erf) applies math.erf elementwise "
         "(it returns float64, so cast back with .astype(x.dtype))."),
        "return act(x @ w1 + b1) @ w2 + b2, with the dtype of x.",
    ),
    difficulty=2,
    minutes=15,
)


# --- normalisation ------------------------------------------------------------------------------

def _norm_cases(ctx: CaseContext, hidden: bool, with_bias: bool) -> list[Case]:
    """``(x, weight[, bias])`` with x of mean about 1, plus a custom eps and a constant vector."""
    def params(d: int) -> tuple[torch.Tensor, ...]:
        weight = 1.0 + ctx.randn(d, scale=0.5)
        return (weight, ctx.randn(d, scale=0.5)) if with_bias else (weight,)

    shapes = [(1, 1, 3), (3, 4, 10)] if hidden else [(2, 5, 8), (4, 6), (3, 2, 16)]
    cases = [Case(f"x {shape}", (1.0 + ctx.randn(*shape, scale=2.0), *params(shape[-1]))) for shape in shapes]
    small = ctx.randn(2, 3, 4, scale=0.1)
    constant = torch.full((2, 3, 4), 2.5, dtype=ctx.dtype, device=ctx.device)
    return cases + [Case("eps 0.1 with small values", (small, *params(4)), {"eps": 0.1}),
                    Case("a constant vector", (constant, *params(4)))]


def layer_norm_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    # Far from the origin, mean(x^2) - mean(x)^2 cancels catastrophically (see docs/grading.md).
    far = Case("a large mean (300) and a spread of 1",
               (300.0 + ctx.randn(2, 3, 8), 1.0 + ctx.randn(8, scale=0.5), ctx.randn(8, scale=0.5)),
               rule="compute the variance as the mean of the squared deviations from the mean, mean((x - mean)^2): "
                    "mean(x^2) - mean(x)^2 loses its digits when the mean is large next to the spread.")
    return _norm_cases(ctx, hidden, with_bias=True) + [far]


def rms_norm_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    return _norm_cases(ctx, hidden, with_bias=False)


def _wrong_layer_norm(over_batch: bool = False, unbiased: bool = False, eps_outside: bool = False,
                      one_pass: bool = False, affine: bool = True, over_first_axis: bool = False):
    """A wrong LayerNorm: statistics per feature over the batch (BatchNorm: every leading axis, or the first
    axis only), unbiased variance, eps outside, the variance as mean(x^2) - mean(x)^2, or without weight and bias
    (``affine=False``)."""
    def layer_norm(x, weight, bias, eps=1e-5):
        dims = tuple(range(x.dim() - 1)) if over_batch else (0,) if over_first_axis else (-1,)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, correction=int(unbiased))
        if one_pass:
            var = (x * x).mean(dim=dims, keepdim=True) - mean * mean
        std = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
        return (x - mean) / std * weight + bias if affine else (x - mean) / std
    return layer_norm


LAYER_NORM_MISTAKES = (
    Mistake("unbiased variance", _wrong_layer_norm(unbiased=True),
            "the variance divides by d - 1. LayerNorm uses the biased variance, mean((x - mean)^2): divide by d "
            "(x.var(dim=-1, unbiased=False))."),
    Mistake("eps outside the square root", _wrong_layer_norm(eps_outside=True),
            "eps is added to the standard deviation. Add it to the variance: sqrt(var + eps)."),
    Mistake("statistics over the batch (BatchNorm)", _wrong_layer_norm(over_batch=True),
            "each feature is normalised over the batch, as BatchNorm does. LayerNorm normalises each vector "
            "over its own last dimension: mean(dim=-1, keepdim=True)."),
    Mistake("statistics over the first axis (BatchNorm's)", _wrong_layer_norm(over_first_axis=True),
            "each feature is normalised over the first axis, the batch, as BatchNorm does. LayerNorm normalises "
            "each vector over its own last dimension: mean(dim=-1, keepdim=True)."),
    Mistake("variance as mean(x^2) - mean(x)^2", _wrong_layer_norm(one_pass=True),
            "mean(x^2) - mean(x)^2 subtracts two nearly equal large numbers when the mean is large compared with "
            "the spread, and loses the digits of the variance. Centre first: mean((x - mean)^2)."),
    Mistake("weight and bias left out", _wrong_layer_norm(affine=False),
            "the normalised vectors come back as they are: multiply them by weight and add bias, the learned scale "
            "and shift of each feature."),
)

LAYER_NORM = Exercise(
    name="layer_norm",
    lesson=LESSON,
    reference=layers.layer_norm,
    gradients=True,
    make_cases=layer_norm_cases,
    points=2,
    forbidden=LAYER_NORM_APIS,
    mistakes=LAYER_NORM_MISTAKES,
    hints=(
        "One mean per vector, over the last dimension with keepdim=True, kept as a size-1 dimension so it broadcasts.",
        "The variance is the mean of the squared deviations from that mean: the biased one, divided by d, not d - 1.",
        "return (x - mean) / torch.sqrt(var + eps) * weight + bias.",
    ),
    difficulty=2,
    minutes=10,
)

NUMPY_LAYER_NORM = Exercise(
    name="numpy_layer_norm",
    lesson=LESSON,
    reference=tnp.layer_norm,
    make_cases=layer_norm_cases,
    points=1,
    numpy=True,
    mistakes=tuple(Mistake(m.name, _on_arrays(m.variant), m.explanation) for m in LAYER_NORM_MISTAKES),
    hints=(
        "x.mean(axis=-1, keepdims=True) gives one mean per vector that broadcasts against x.",
        "x.var(axis=-1, keepdims=True) is already the biased variance (ddof=0).",
        "return (x - mean) / np.sqrt(var + eps) * weight + bias.",
    ),
    difficulty=1,
    minutes=5,
)


def _wrong_rms_norm(centred: bool = False, summed: bool = False, eps_outside: bool = False, root: bool = True):
    """A wrong RMSNorm: centred first, the sum of squares for their mean, eps outside the root, or no root."""
    def rms_norm(x, weight, eps=1e-6):
        if centred:
            x = x - x.mean(dim=-1, keepdim=True)
        square = (x * x).sum(dim=-1, keepdim=True) if summed else (x * x).mean(dim=-1, keepdim=True)
        rms = square.sqrt() + eps if eps_outside else (square + eps).sqrt()
        return x / rms * weight if root else x / (square + eps) * weight
    return rms_norm


RMS_NORM = Exercise(
    name="rms_norm",
    lesson=LESSON,
    reference=layers.rms_norm,
    gradients=True,
    make_cases=rms_norm_cases,
    points=1,
    forbidden=RMS_NORM_APIS,
    mistakes=(
        Mistake("mean subtracted", _wrong_rms_norm(centred=True),
                "RMSNorm does not centre: divide x itself by its root mean square."),
        Mistake("sum of squares instead of their mean", _wrong_rms_norm(summed=True),
                "the root of the SUM of squares grows with d. Take the mean: (x * x).mean(dim=-1, keepdim=True)."),
        Mistake("eps outside the square root", _wrong_rms_norm(eps_outside=True),
                "eps is added to the root. Add it under the root: sqrt(mean(x^2) + eps)."),
        Mistake("no square root", _wrong_rms_norm(root=False),
                "x is divided by its mean square. Divide by the square root of it, the root mean square: "
                "sqrt(mean(x^2) + eps)."),
    ),
    hints=(
        "The mean square of each vector: (x * x).mean(dim=-1, keepdim=True).",
        "torch.rsqrt(m + eps) is 1 / sqrt(m + eps).",
        "return x * torch.rsqrt(mean_square + eps) * weight.",
    ),
    difficulty=1,
    minutes=5,
)


# --- residual connections -----------------------------------------------------------------------

class _ResidualWithTrainedNorm(layers.ResidualConnection):
    """The reference with a LayerNorm that looks trained (weight near 1, bias near 0, seeded by ``d_model``).

    A fresh LayerNorm (weight 1, bias 0) would hide a learner's code that skips its weight or bias.
    """

    def __init__(self, d_model: int, dropout: float = 0.0, norm_first: bool = True):
        super().__init__(d_model, dropout, norm_first)
        generator = torch.Generator().manual_seed(d_model)
        with torch.no_grad():
            self.norm.weight.add_(0.5 * torch.randn(d_model, generator=generator))
            self.norm.bias.add_(0.5 * torch.randn(d_model, generator=generator))


def _sublayer(ctx: CaseContext, d_model: int) -> nn.Module:
    """A seeded ``tanh(Linear(x))`` made of plain ``torch.nn`` layers, so that a case holds only picklable data."""
    linear = nn.utils.skip_init(nn.Linear, d_model, d_model, device=ctx.device, dtype=ctx.dtype)
    with torch.no_grad():
        linear.weight.copy_(ctx.randn(d_model, d_model, scale=d_model**-0.5))
        linear.bias.copy_(ctx.randn(d_model, scale=0.5))
    return nn.Sequential(linear, nn.Tanh())


def residual_cases(ctx: CaseContext, hidden: bool) -> list[Case]:
    sizes = [(1, 1, 4), (3, 6, 10)] if hidden else [(2, 5, 8), (1, 3, 16)]
    def case(norm_first: bool, b: int, n: int, d: int, dropout: float = 0.0) -> Case:
        label = f"{'pre' if norm_first else 'post'}-LN, x ({b}, {n}, {d})" + (f", dropout {dropout}" if dropout else "")
        return Case(label, (ctx.randn(b, n, d), _sublayer(ctx, d)), init=(d, dropout, norm_first))

    cases = [case(norm_first, *size) for norm_first in (True, False) for size in sizes]
    return cases + [c for norm_first in (True, False) for c in with_dropout(case(norm_first, 2, 4, 8, 0.3), ctx)]


def _wrong_residual(pre: bool | None = None, residual: bool = True, from_normalised: bool = False):
    """A wrong residual block: always pre-LN or post-LN (``pre``), no skip path, or a skip from norm(x)."""
    def forward(module, x, sublayer):
        pre_ln = module.norm_first if pre is None else pre
        if pre_ln:
            out = sublayer(module.norm(x))
            skip = module.norm(x) if from_normalised else x
            return skip + out if residual else out
        out = sublayer(x)
        return module.norm(x + out if residual else out)
    return forward


RESIDUAL_CONNECTION = Exercise(
    name="ResidualConnection",
    lesson=LESSON,
    reference=_ResidualWithTrainedNorm,
    kind="module",
    make_cases=residual_cases,
    points=3,
    mistakes=(
        Mistake("always pre-LN", _wrong_residual(pre=True),
                "norm_first=False must give post-LN, norm(x + sublayer(x)). Branch on self.norm_first."),
        Mistake("always post-LN", _wrong_residual(pre=False),
                "norm_first=True must give pre-LN, x + sublayer(norm(x)). Branch on self.norm_first."),
        Mistake("no residual path", _wrong_residual(residual=False),
                "the input x is not added back. The block returns x plus the sublayer's output (normalised "
                "afterwards in post-LN)."),
        Mistake("skip path from norm(x)", _wrong_residual(from_normalised=True),
                "in pre-LN the skip path carries x itself, not norm(x): x + sublayer(norm(x)). Only the "
                "sublayer's input is normalised."),
    ),
    hints=(
        ("In __init__: a member `norm`, an nn.LayerNorm(d_model) (or your own module with `weight` and `bias`), "
         "an nn.Dropout, and norm_first."),
        "`sublayer` is any function of one tensor (attention or a feed-forward network): call it like sublayer(h).",
        "Pre-LN: x + self.dropout(sublayer(self.norm(x))). Post-LN: self.norm(x + self.dropout(sublayer(x))).",
    ),
    difficulty=2,
    minutes=15,
)

EXERCISES = (NUMPY_FEED_FORWARD, GELU, FEED_FORWARD, SWIGLU, NUMPY_LAYER_NORM, LAYER_NORM, RMS_NORM,
             RESIDUAL_CONNECTION)
