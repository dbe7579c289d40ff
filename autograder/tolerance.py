"""How close is close enough: each case's tolerance, derived from the reference's own numerics.

Two honest implementations of the same maths rarely agree to the last bit: they sum in
another order, fuse operations differently (``rsqrt`` for ``1 / sqrt``, ``einsum`` for
``matmul``), or work in float64 before casting back. How far apart they may land depends
on the dtype *and* on the case: a softmax of logits near 1000 loses three more digits in
float32 than one of logits near 1. So a case's tolerance is not fixed per dtype; it is
derived, on the trusted side, from what the reference itself does on that case's inputs.

For every floating leaf of the answer (each tensor, array or float of the output, and each
gradient, of a module's parameters or of an input), with ``eps`` the machine epsilon of the
case's dtype:

* ``exact``: the reference on the same inputs (and weights) upcast to float64;
* the spread ``S``: how far the answer moves under rounding, the largest of

  - the reference's own rounding: its answer in float32 against ``exact``, times
    ``eps / eps(float32)`` (for a float32 case that is the expected answer itself; for a
    float64 case, the reference run on the inputs rounded to float32, scaled down), and
  - its conditioning: the expected answer against the answer, in the case's dtype, on
    inputs and weights each multiplied by ``1 ± eps`` (random signs, :data:`PROBES`
    draws), which is how far any backward-stable order of operations may move it (in the
    case's dtype, so that a module in training mode draws the same dropout masks);

* ``atol = SAFETY * (S + eps * max|exact|)`` and ``rtol = SAFETY * eps * M``: a formulation
  in the log domain (``exp(x - logsumexp(x))``) rounds at the logits' scale, which moves
  every entry by ``eps * |x|`` of itself however well-conditioned the answer is. ``M`` is
  the largest magnitude among the case's floating inputs and weights, but no more than
  the answer's relative sensitivity (the largest ``|probe - expected| / |expected|`` of
  the perturbed runs over all its entries, in units of ``eps``), and at least 1: large
  inputs that the answer only sees through a logarithm (model sizes in a power law) do
  not loosen it, while an attention's output shares the scale of its weights' logits.

The gradients (of the projection ``sum(output * w)``, ``|w| <= 1``) are judged at the inputs'
scale: their leaves share one size, the largest among them and the output's (the scale of
the terms that cancel in a gradient that is near zero: a key projection's bias, which
softmax cannot see; a softmax of logits near 1000, one-hot to rounding), and both bounds
take ``M`` itself, not capped by the sensitivity, so ``atol = SAFETY * (S + eps * M * size)``
and ``rtol = SAFETY * eps * M``. A log-domain formulation rounds each probability at the
logits' scale, ``eps * |x|`` of itself, and a gradient subtracts such probabilities from
one another, even where the perturbed runs barely move the answer.

A probe that changes a discrete part of the answer (a chosen token, a shape, which entries
are infinite) crossed a decision boundary, and one that moves the answer by more than
``eps ** (1/3)`` of its size changed something other than rounding (a random draw): neither
counts. Nothing here reaches the grading sandbox; the learner's code never sees a
tolerance.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import nn

SAFETY = 16.0  # how many times the estimated rounding spread an honest answer may differ by
PROBES = 2  # perturbed runs (in the case's dtype) per case
PLAIN_DATA_MODULE = "autograder.harness.casedata"  # case inputs that are objects holding tensors


class Tolerance(NamedTuple):
    """How far one floating leaf of an answer may be from the expected one: ``|a - e| <= atol + rtol * |e|``."""

    atol: float
    rtol: float


def eps_of(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


# --- converting a case's inputs ---------------------------------------------------------------------

def convert(value: Any, tensor_fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``value`` with every floating tensor and array replaced by ``tensor_fn`` of it (arrays go through torch
    and come back arrays), and every floating dtype by the one ``tensor_fn`` gives (a ``dtype=`` argument asks for
    the answer in it); modules and plain-data case objects are copied first, the rest kept."""
    if isinstance(value, torch.dtype):
        return tensor_fn(torch.empty(0, dtype=value)).dtype if value.is_floating_point else value
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        if not np.issubdtype(value, np.floating):
            return value
        converted = tensor_fn(torch.from_numpy(np.empty(0, dtype=value))).numpy().dtype
        return converted.type if isinstance(value, type) else converted
    if isinstance(value, torch.Tensor):
        return tensor_fn(value.detach()) if value.is_floating_point() else value
    if isinstance(value, np.ndarray):
        return tensor_fn(torch.from_numpy(value)).numpy() if np.issubdtype(value.dtype, np.floating) else value
    if isinstance(value, nn.Module):
        module = copy.deepcopy(value)
        with torch.no_grad():
            for tensor in (*module.parameters(), *module.buffers()):
                if tensor.is_floating_point():
                    tensor.data = tensor_fn(tensor.data)
        return module
    if isinstance(value, (tuple, list)):
        return type(value)(convert(v, tensor_fn) for v in value)
    if isinstance(value, dict):
        return {k: convert(v, tensor_fn) for k, v in value.items()}
    if type(value).__module__ == PLAIN_DATA_MODULE:
        converted = copy.copy(value)
        converted.__dict__ = {k: convert(v, tensor_fn) for k, v in vars(value).items()}
        return converted
    return value


def to_float64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float64)


def to_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32)


def perturbation(eps: float, draw: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A tensor with each entry multiplied by ``1 + eps`` or ``1 - eps`` (signs seeded by ``draw``), in its dtype."""
    generator = torch.Generator().manual_seed(draw)

    def perturb(tensor: torch.Tensor) -> torch.Tensor:
        signs = torch.randint(0, 2, tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1
        return (tensor.to(torch.float64) * (1 + eps * signs.to(tensor.device))).to(tensor.dtype)
    return perturb


# --- the leaves of an answer -------------------------------------------------------------------------

def _is_float_leaf(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    if isinstance(value, np.ndarray):
        return np.issubdtype(value.dtype, np.floating)
    return isinstance(value, float)


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """``(path, leaf)`` for every leaf of ``value``, in order."""
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    return [(path, value)]


def _leaf_eps(leaf: Any, eps: float) -> float:
    """``eps``, or the machine epsilon of ``leaf``'s own dtype where that is coarser (a float32 table asked of a
    float64 case)."""
    if isinstance(leaf, torch.Tensor):
        return max(eps, eps_of(leaf.dtype))
    if isinstance(leaf, np.ndarray):
        return max(eps, float(np.finfo(leaf.dtype).eps))
    return eps


def _as_float64(leaf: Any) -> torch.Tensor:
    if isinstance(leaf, torch.Tensor):
        return leaf.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(leaf, dtype=np.float64))


def _same_discrete(a: Any, b: Any) -> bool:
    """Whether two non-floating leaves are equal (token ids, masks, strings, numbers)."""
    try:
        if isinstance(a, (torch.Tensor, np.ndarray)) or isinstance(b, (torch.Tensor, np.ndarray)):
            a, b = torch.as_tensor(np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a)), \
                torch.as_tensor(np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b))
            return a.shape == b.shape and bool((a == b).all())
        return bool(a == b)
    except Exception:  # leaves that cannot even be compared are not the same
        return False


def _spread(probe: list[tuple[tuple, Any]], exact: list[tuple[tuple, Any]], eps: float,
            size: float) -> dict[tuple, tuple[float, float]] | None:
    """Per floating leaf, the largest finite difference of ``probe`` (a run at precision ``eps``) from ``exact``,
    absolute and relative to each entry; ``None`` when the probe crossed a decision boundary (its structure or a
    discrete leaf differs). A leaf more than ``eps ** (1/3)`` of ``size`` (the answer's largest value) away is
    left out."""
    if [path for path, _ in probe] != [path for path, _ in exact]:
        return None
    spreads = {}
    for (path, p), (_, e) in zip(probe, exact):
        if not _is_float_leaf(e):
            if not _same_discrete(p, e):
                return None
            continue
        if not _is_float_leaf(p):
            return None
        p64, e64 = _as_float64(p), _as_float64(e)
        if p64.shape != e64.shape:
            return None
        both = torch.isfinite(p64) & torch.isfinite(e64)  # an entry that became infinite is a decision
        difference = float((p64 - e64)[both].abs().max()) if both.any() else 0.0
        if difference > eps ** (1 / 3) * size:
            continue  # far beyond rounding: a random draw or a branch taken, not numerics
        nonzero = both & (e64 != 0)
        relative = float(((p64 - e64) / e64)[nonzero].abs().max()) if nonzero.any() else 0.0
        spreads[path] = (difference, relative)
    return spreads


def _tree(value: Any, leaf_tolerance: Callable[[tuple], Tolerance | None], path: tuple = ()) -> Any:
    """A structure like ``value`` holding a :class:`Tolerance` at each floating leaf (lists for sequences)."""
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return [_tree(v, leaf_tolerance, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _tree(v, leaf_tolerance, (*path, k)) for k, v in value.items()}
    return leaf_tolerance(path) if _is_float_leaf(value) else None


def _sizes(leaves: list[tuple[tuple, Any]], pooled: tuple[tuple, ...]) -> dict[tuple, float]:
    """The largest finite magnitude of each floating leaf; the leaves under a ``pooled`` path share their largest."""
    sizes = {}
    for path, leaf in leaves:
        if _is_float_leaf(leaf):
            finite = _as_float64(leaf)[torch.isfinite(_as_float64(leaf))]
            sizes[path] = float(finite.abs().max()) if finite.numel() else 0.0
    for prefix in pooled:
        under = [path for path in sizes if path[:len(prefix)] == prefix]
        shared = max((sizes[path] for path in under), default=0.0)
        sizes.update({path: shared for path in under})
    return sizes


def _quietly(answer: Callable, tensor_fn: Callable) -> list[tuple[tuple, Any]] | None:
    """The leaves of ``answer(tensor_fn)``; ``None`` when the reference cannot run that probe (it is left out)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # a float32 probe may overflow where the case does not
            return _leaves(answer(tensor_fn))
    except Exception:  # a probe the reference cannot run only leaves its estimate out
        return None


def derive(answer: Callable[[Callable[[torch.Tensor], torch.Tensor]], Any], expected: Any,
           dtype: torch.dtype, gradients: tuple[tuple, ...] = ()) -> Any:
    """The tolerance tree of ``expected``, the reference's answer in ``dtype`` (``None``: nothing floating).

    ``answer(tensor_fn)`` recomputes the reference's answer with every floating input (and weight) passed
    through ``tensor_fn``; the probes of the module docstring are such recomputations. The leaves under each
    path of ``gradients`` (gradients by name) share one size, the largest among them and the rest of the answer:
    a gradient that is zero in exact arithmetic (a key projection's bias, which softmax cannot see) is rounding
    noise on the scale of the others, or of the output. Both their bounds scale with ``M`` (see the module
    docstring)."""
    expected_leaves = _leaves(expected)
    if not any(_is_float_leaf(leaf) for _, leaf in expected_leaves):
        return None
    eps, eps32 = eps_of(dtype), eps_of(torch.float32)
    own_eps = {path: _leaf_eps(leaf, eps) for path, leaf in expected_leaves if _is_float_leaf(leaf)}
    exact = (None if dtype == torch.float64 else _quietly(answer, to_float64)) or expected_leaves
    sizes = _sizes(exact, gradients)
    whole = max(sizes.values(), default=0.0)
    largest = [1.0]  # M: the largest magnitude among the floating inputs and weights

    def measuring(tensor_fn):
        def measured(tensor: torch.Tensor) -> torch.Tensor:
            finite = tensor[torch.isfinite(tensor)]
            if finite.numel():
                largest[0] = max(largest[0], float(finite.abs().max()))
            return tensor_fn(tensor)
        return measured

    # (probe, what it is compared with, its precision, whether its spread is rescaled to the leaf's precision)
    rounding = expected_leaves if dtype == torch.float32 else _quietly(answer, to_float32)
    probes = [(rounding, exact, eps32, True)]
    probes += [(_quietly(answer, measuring(perturbation(eps, draw))), expected_leaves, eps, False)
               for draw in range(PROBES)]
    spread: dict[tuple, float] = {}
    sensitivity = 0.0  # the largest relative move of an entry in a perturbed run, in units of eps
    for leaves, against, probe_eps, rescale in probes:
        for path, (value, relative) in ((_spread(leaves, against, probe_eps, whole) if leaves else None)
                                        or {}).items():
            value *= own_eps[path] / probe_eps if rescale else 1.0
            spread[path] = max(spread.get(path, 0.0), value)
            if not rescale:
                sensitivity = max(sensitivity, relative / probe_eps)
    scale = max(1.0, min(largest[0], sensitivity))
    in_gradients = {path for path in sizes if any(path[:len(prefix)] == prefix for prefix in gradients)}
    output = max((size for path, size in sizes.items() if path not in in_gradients), default=0.0)
    sizes.update({path: max(sizes[path], output) for path in in_gradients})

    def leaf_tolerance(path: tuple) -> Tolerance:
        own, tiny = own_eps[path], torch.finfo(dtype).tiny
        if path in in_gradients:  # each term rounds at the inputs' scale, and the terms may cancel
            return Tolerance(max(SAFETY * (spread.get(path, 0.0) + own * largest[0] * sizes[path]), tiny),
                             SAFETY * own * largest[0])
        return Tolerance(max(SAFETY * (spread.get(path, 0.0) + own * sizes.get(path, 0.0)), tiny), SAFETY * own * scale)
    return _tree(expected, leaf_tolerance)


def scaled(tolerance: Any, factor: float) -> Any:
    """``tolerance`` (a tree, or one pair) with every bound multiplied by ``factor``."""
    if isinstance(tolerance, list):
        return [scaled(t, factor) for t in tolerance]
    if isinstance(tolerance, dict):
        return {k: scaled(t, factor) for k, t in tolerance.items()}
    if tolerance is None:
        return None
    atol, rtol = tolerance
    return Tolerance(atol * factor, rtol * factor)
