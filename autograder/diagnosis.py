"""How a wrong output relates to the right one, said in the learner's terms, for any exercise.

When a learner's output has the wrong values (or shape) and no listed mistake of the exercise
explains it, :func:`relate` looks for a relation between the learner's output ``A`` and the
expected one ``E`` that names the slip without knowing the exercise:

- ``A`` is ``E`` with two axes swapped, or ``E``'s values in another layout (a ``view``/``reshape``
  where a transpose must come first): the same values, arranged differently;
- ``A`` holds each row's right values in another order (sorted, reversed);
- ``E`` sums to 1 along one axis and ``A`` along another: normalised over the wrong axis;
- ``A = c E`` for a constant ``c`` (named when it is ``n``, ``sqrt(n)``, ``1/n`` or ``1/sqrt(n)`` of a size
  ``n`` of the inputs, or ``-1``);
- ``A`` is ``E`` shifted by ``s`` positions along an axis (``A[i] = E[i + s]``);
- ``A`` is the right answer for other arguments: two arguments swapped, one replaced by another, a mask
  inverted or left out, an input scaled by such a constant;
- ``A`` is right on part of the output only: where a mask is True, in the first positions of an axis.

Each relation is tried on the first wrong tensor of the output, at the case's tolerance, in that order, within
a time budget; the first that holds is described.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from autograder.compare import compare
from autograder.harness.calls import clone

BUDGET_S = 0.2  # the most time spent looking for a relation on one case
MAX_SHIFT = 8  # the longest shift along an axis that is tried


@dataclass(frozen=True)
class Leaf:
    """One tensor of an output: where it is (``"the output[0]"``), the learner's and the expected values,
    and the tolerance ``(atol, rtol)`` it is compared with."""

    where: str
    actual: torch.Tensor
    expected: torch.Tensor
    tolerance: tuple[float, float]


@dataclass(frozen=True)
class Call:
    """The reference's call on a case, to recompute it on other arguments: ``run(*args, **kwargs)``, the
    positional ``args`` and ``kwargs`` of the case, and the names of the positions. ``scale_inputs`` tries the
    inputs scaled by a constant too (for functions, whose calls are cheap)."""

    run: Callable[[tuple, dict], Any]
    args: tuple
    kwargs: dict
    names: tuple[str, ...]
    scale_inputs: bool = True


def relate(actual: Any, expected: Any, tolerance: Any, call: Call | None = None) -> str:
    """A sentence relating the learner's ``actual`` output to the ``expected`` one, or ``""`` when no
    relation holds."""
    leaves = wrong_leaves(actual, expected, tolerance)
    if not leaves:
        return ""
    deadline = time.perf_counter() + BUDGET_S
    sizes = _sizes(call)
    for leaf in leaves:
        for describe in (_rearranged, _normalised_elsewhere, lambda l: _constant_factor(l, sizes), _shifted):
            found = describe(leaf)
            if found:
                return found
    if call is not None:
        found = _other_arguments(actual, expected, tolerance, call, sizes, deadline)
        if found:
            return found
    return _partly_right(leaves[0], call)


def wrong_leaves(actual: Any, expected: Any, tolerance: Any, where: str = "the output") -> list[Leaf]:
    """The tensors of ``expected`` (in a tuple, list or dict) that ``actual`` gets wrong with the same shape,
    in order, as float tensors."""
    if isinstance(expected, (tuple, list)) and isinstance(actual, (tuple, list)) and len(actual) == len(expected):
        return [leaf for i, (a, e) in enumerate(zip(actual, expected))
                for leaf in wrong_leaves(a, e, _part(tolerance, i), f"{where}[{i}]")]
    if isinstance(expected, dict) and isinstance(actual, dict) and actual.keys() == expected.keys():
        return [leaf for key in expected
                for leaf in wrong_leaves(actual[key], expected[key], _part(tolerance, key), f"{where}[{key!r}]")]
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        actual, expected = torch.tensor(float(actual)), torch.tensor(expected)  # a number: a 0-d tensor
    if not isinstance(expected, (torch.Tensor, np.ndarray)) or not isinstance(actual, type(expected)) \
            or compare(actual, expected, tolerance) is None:
        return []
    a, e = (torch.as_tensor(v).detach().cpu() for v in (actual, expected))
    if a.shape != e.shape or a.dtype == torch.bool or a.numel() == 0:
        return []
    pair = tolerance if isinstance(tolerance, tuple) and len(tolerance) == 2 else (0.0, 0.0)
    return [Leaf(where, a.double(), e.double(), (float(pair[0]), float(pair[1])))]


def _part(tolerance: Any, key: Any) -> Any:
    return tolerance[key] if isinstance(tolerance, (list, dict)) else tolerance


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: tuple[float, float], loosen: float = 1.0) -> bool:
    atol, rtol = tolerance
    atol, rtol = max(atol, 1e-12) * loosen, max(rtol, 1e-9) * loosen
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def _dim(d: int, ndim: int) -> str:
    """A dim in words, with the negative index a learner writes: ``dim 3 (dim=-1)``."""
    return f"dim {d} ({_dim_argument(d, ndim)})" if ndim > 1 else "dim 0"


def _dim_argument(d: int, ndim: int) -> str:
    return f"dim={d - ndim}" if ndim > 1 else "dim=0"


# --- the same values, arranged differently -------------------------------------------------------------------


def _nearly_right(leaf: Leaf) -> bool:
    """Whether the output is within a millionth of the expected one's scale everywhere: a slip of rounding, not
    of arrangement."""
    scale = float(leaf.expected.abs().nan_to_num(0.0, 0.0, 0.0).max()) if leaf.expected.numel() else 0.0
    return bool(torch.allclose(leaf.actual, leaf.expected, rtol=1e-6, atol=1e-6 * scale, equal_nan=True))


def _rearranged(leaf: Leaf) -> str:
    a, e = leaf.actual, leaf.expected
    if _nearly_right(leaf):
        return ""
    for perm in itertools.permutations(range(e.ndim)):
        if list(perm) != sorted(perm) and e.permute(perm).shape == a.shape and _close(a, e.permute(perm), leaf.tolerance):
            swapped = [d for d, p in enumerate(perm) if d != p]
            axes = " and ".join(str(d) for d in swapped)
            return (f"{leaf.where} holds the expected values with dims {axes} swapped, as if transposed: look for a "
                    "transpose (or permute) too many or missing, or an operand given in the wrong orientation.")
    if a.ndim == 0 or not _close(a.flatten().sort().values, e.flatten().sort().values, leaf.tolerance):
        return ""
    for d in range(a.ndim):
        if a.shape[d] > 1 and _close(a.sort(dim=d).values, e.sort(dim=d).values, leaf.tolerance):
            if bool((a.diff(dim=d) >= 0).all() or (a.diff(dim=d) <= 0).all()):
                return (f"{leaf.where} has the right values along {_dim(d, a.ndim)}, but in another order (sorted): "
                        "keep the entries where they are, in their original order.")
            return (f"{leaf.where} has the right values along {_dim(d, a.ndim)}, but in another order: the dims "
                    "merged into it were put in another order first (a transpose or permute of the wrong dims, or "
                    "none where one belongs).")
    return (f"{leaf.where} holds exactly the expected values, arranged in another layout: a view/reshape that "
            "splits or merges dims needs the transpose first when the dims it groups are not next to each other "
            "(or a transpose is applied where none belongs).")


# --- normalised along the wrong axis ---------------------------------------------------------------------------


def _sums_to_one(x: torch.Tensor, d: int) -> bool:
    return x.shape[d] > 1 and bool((x >= 0).all()) and bool(((x.sum(dim=d) - 1).abs() < 1e-4).all())


def _normalised_elsewhere(leaf: Leaf) -> str:
    a, e = leaf.actual, leaf.expected
    if e.ndim == 0 or not torch.isfinite(e).all():
        return ""
    right = [d for d in range(e.ndim) if _sums_to_one(e, d)]
    if not right:
        return ""
    theirs = [d for d in range(a.ndim) if _sums_to_one(a, d)]
    want = _dim(right[-1], e.ndim)
    if theirs and right[-1] not in theirs:
        return (f"{leaf.where} sums to 1 along {_dim(theirs[-1], a.ndim)}, but it should sum to 1 along {want}: "
                f"normalise over {_dim_argument(right[-1], e.ndim)} (the sum and the max go over the same dim).")
    if bool((a >= 0).all()) and abs(float(a.sum()) - 1) < 1e-4 and a.numel() > e.shape[right[-1]]:
        return (f"{leaf.where} sums to 1 over all its entries together, but it should sum to 1 along {want} "
                "separately for each row: reduce over that dim only, with keepdim=True.")
    return ""


# --- a constant factor, a shift ----------------------------------------------------------------------------------


def _sizes(call: Call | None) -> list[int]:
    """The sizes a factor may come from: every dim of the inputs and every integer argument, and 2."""
    sizes = {2}
    if call is not None:
        for value in itertools.chain(call.args, call.kwargs.values()):
            if isinstance(value, (torch.Tensor, np.ndarray)):
                sizes.update(int(n) for n in value.shape)
            elif isinstance(value, int) and not isinstance(value, bool):
                sizes.add(value)
    return sorted(n for n in sizes if 1 < n <= 4096)


def named_factors(sizes: list[int]) -> Iterator[tuple[float, str]]:
    """``(value, name)`` of the constants a factor is named as: ``sqrt(n)``, ``1/sqrt(n)``, ``n``, ``1/n``."""
    for n in sizes:
        yield math.sqrt(n), f"sqrt({n})"
        yield 1 / math.sqrt(n), f"1/sqrt({n})"
        yield float(n), f"{n}"
        yield 1 / n, f"1/{n}"


def _factor_name(c: float, sizes: list[int]) -> str:
    for value, name in named_factors(sizes):
        if abs(c - value) <= 1e-6 * value:
            return f" (= {name})"
    return ""


def _constant_factor(leaf: Leaf, sizes: list[int]) -> str:
    a, e = leaf.actual, leaf.expected
    finite = torch.isfinite(a) & torch.isfinite(e)
    if not finite.any():
        return ""
    denominator = float((e[finite] * e[finite]).sum())
    if denominator == 0:
        return ""
    c = float((a[finite] * e[finite]).sum()) / denominator
    if abs(c - 1) < 1e-6 or c == 0 or not _close(a, c * e, leaf.tolerance, loosen=4):
        return ""
    if abs(c + 1) < 1e-6:
        return f"{leaf.where} is the expected output with the opposite sign: look for a sign flipped (a - b for b - a)."
    return (f"{leaf.where} is the expected output times {c:.6g}{_factor_name(c, sizes)}: the values are right up to "
            "a constant scale, so look for a factor used twice, forgotten, or the wrong size (d_k, d_model, sqrt).")


def _shifted(leaf: Leaf) -> str:
    a, e = leaf.actual, leaf.expected
    if _nearly_right(leaf):
        return ""
    for d in range(a.ndim):
        n = a.shape[d]
        for s in range(1, min(MAX_SHIFT, n - 2) + 1):
            for sign, (mine, theirs, unshifted) in ((1, (a.narrow(d, 0, n - s), e.narrow(d, s, n - s),
                                                         e.narrow(d, 0, n - s))),
                                                    (-1, (a.narrow(d, s, n - s), e.narrow(d, 0, n - s),
                                                          e.narrow(d, s, n - s)))):
                if bool(theirs.abs().gt(0).any()) and _close(mine, theirs, leaf.tolerance) \
                        and not _close(mine, unshifted, leaf.tolerance):
                    where = f"i + {s}" if sign > 0 else f"i - {s}"
                    return (f"{leaf.where} is the expected one shifted by {s} position{'s' if s > 1 else ''} along "
                            f"{_dim(d, a.ndim)}: your entry i holds the value that belongs at {where}. Look for an "
                            "off-by-one, or positions that do not start where they should (an offset such as the "
                            "cache's length).")
    return ""


# --- the right answer for other arguments ------------------------------------------------------------------------


def _other_arguments(actual: Any, expected: Any, tolerance: Any, call: Call, sizes: list[int],
                     deadline: float) -> str:
    for (args, kwargs), description in _variations(call, sizes):
        if time.perf_counter() > deadline:
            return ""
        try:
            with torch.no_grad():
                other = call.run(*args, **kwargs)
        except Exception:  # a variation the reference cannot take is simply no relation
            continue
        if _matches(actual, other, tolerance) and not _matches(expected, other, tolerance):
            return description
    return ""


def _matches(actual: Any, other: Any, tolerance: Any) -> bool:
    try:
        return compare(actual, other, tolerance) is None
    except Exception:  # another structure than the learner's output: no match
        return False


def _named_inputs(call: Call) -> list[tuple[str, Any]]:
    """``(name, value)`` of the case's inputs, positions first: `q`, `mask`."""
    named = [(call.names[i] if i < len(call.names) else f"argument {i + 1}", v) for i, v in enumerate(call.args)]
    return named + list(call.kwargs.items())


def _with(call: Call, replacements: dict[str, Any]) -> tuple[tuple, dict]:
    names = [name for name, _ in _named_inputs(call)]
    args = tuple(replacements.get(names[i], v) for i, v in enumerate(call.args))
    kwargs = {k: replacements.get(k, v) for k, v in call.kwargs.items()}
    return clone(args), clone(kwargs)


def _variations(call: Call, sizes: list[int]) -> Iterator[tuple[tuple[tuple, dict], str]]:
    """The other arguments tried, each with the sentence that describes it."""
    inputs = [(name, v) for name, v in _named_inputs(call) if isinstance(v, (torch.Tensor, np.ndarray))]
    for (n1, v1), (n2, v2) in itertools.combinations(inputs, 2):
        if v1.shape == v2.shape and v1.dtype == v2.dtype:
            yield _with(call, {n1: v2, n2: v1}), (
                f"Your output is the right answer with `{n1}` and `{n2}` swapped: check which argument goes where.")
    for (n1, v1), (n2, v2) in itertools.permutations(inputs, 2):
        if v1.shape == v2.shape and v1.dtype == v2.dtype:
            yield _with(call, {n1: v2}), (f"Your output is the right answer with `{n1}` replaced by `{n2}`: "
                                          f"`{n2}` is used where `{n1}` belongs.")
    for name, value in inputs:
        if value.dtype in (torch.bool, np.bool_):
            yield _with(call, {name: ~value}), (f"Your output is the right answer for the mask `{name}` inverted: "
                                                "True means \"may attend\" (keep), False means masked out.")
    for name, value in inputs:
        if value.dtype in (torch.bool, np.bool_):
            yield _with(call, {name: None}), (f"Your output is the right answer without the mask `{name}`: the "
                                              "mask is not applied.")
    if call.scale_inputs:
        for name, value in inputs:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                for factor, label in named_factors(sizes):
                    yield _with(call, {name: value * factor}), (
                        f"Your output is the right answer for `{name}` multiplied by {factor:.4g} (= {label}): a "
                        "constant factor is off (the scale is applied twice, forgotten, or uses another size).")


# --- right on part of the output ----------------------------------------------------------------------------------


def _partly_right(leaf: Leaf, call: Call | None) -> str:
    a, e = leaf.actual, leaf.expected
    atol, rtol = leaf.tolerance
    wrong = ~torch.isclose(a, e, atol=max(atol, 1e-12), rtol=max(rtol, 1e-9), equal_nan=True)
    total, bad = wrong.numel(), int(wrong.sum())
    if bad == 0 or bad == total:
        return ""
    head = f"Right on part of the output: {total - bad} of {total} entries of {leaf.where} are right"
    for detail in (_where_a_mask(wrong, call), _where_expected_is(wrong, e), _along_a_dim(wrong)):
        if detail:
            return f"{head}; {detail}"
    return f"{head}."


def _where_a_mask(wrong: torch.Tensor, call: Call | None) -> str:
    if call is None:
        return ""
    for name, value in _named_inputs(call):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
            continue
        try:
            mask = torch.broadcast_to(value.cpu(), wrong.shape)
        except RuntimeError:
            continue
        for state, positions in ((False, ~mask), (True, mask)):
            if positions.any() and not bool((wrong & ~positions).any()):
                exact = "exactly" if bool((wrong == positions).all()) else "only"
                return (f"the wrong ones are {exact} where the mask `{name}` is {state}: look at how those "
                        "positions are treated.")
    return ""


def _where_expected_is(wrong: torch.Tensor, e: torch.Tensor) -> str:
    for value, words in ((0.0, "0"), (float("-inf"), "-inf")):
        special = e == value
        if special.any() and not special.all() and bool((wrong == special).all()):
            return f"the wrong ones are exactly where the expected value is {words}."
    return ""


def _along_a_dim(wrong: torch.Tensor) -> str:
    for d in range(wrong.ndim):
        others = [i for i in range(wrong.ndim) if i != d]
        per_index = wrong.any(dim=others) if others else wrong
        bad = per_index.nonzero().flatten().tolist()
        n = wrong.shape[d]
        if n < 2 or len(bad) == n:
            continue
        if bad == list(range(bad[0], n)):
            return f"along {_dim(d, wrong.ndim)} the first {bad[0]} positions are right, those from {bad[0]} on are not."
        if bad == list(range(0, len(bad))):
            return f"along {_dim(d, wrong.ndim)} only the first {len(bad)} positions are wrong."
        if len(bad) == 1:
            return f"along {_dim(d, wrong.ndim)} only position {bad[0]} is wrong."
    return ""
