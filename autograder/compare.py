"""Staged comparison of a learner's output with the expected one.

The stages run in order and the first that fails is reported, with a sentence that says
how to fix it: type -> length -> shape -> dtype -> device -> NaN/inf -> values.

A tolerance is one ``(atol, rtol)`` pair for every floating value, or a tree shaped like the
expected answer (lists for its sequences, dicts for its dicts) with a pair at each floating
leaf, as :func:`autograder.tolerance.derive` makes it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from autograder.harness.mismatch import Mismatch
from autograder.harness.wire import Opaque


def _type_name(value: Any) -> str:
    if isinstance(value, Opaque):  # a value the grading sandbox could only name
        return value.type_name
    if isinstance(value, torch.Tensor):
        return "torch.Tensor"
    if isinstance(value, np.ndarray):
        return "numpy.ndarray"
    return type(value).__name__


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _part(tolerance: Any, key: Any) -> Any:
    """The tolerance of item ``key`` of a sequence or dict: its branch of a tree, else the one pair."""
    return tolerance[key] if isinstance(tolerance, (list, dict)) else tolerance


def compare(actual: Any, expected: Any, tolerance: Any, where: str = "the output") -> Mismatch | None:
    """``None`` when ``actual`` matches ``expected``, else the first failed stage."""
    if isinstance(expected, (tuple, list)) and not isinstance(expected, torch.Size):
        return _compare_sequences(actual, expected, tolerance, where)
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        return _compare_arrays(actual, expected, tolerance, where)
    if isinstance(expected, dict):
        return _compare_dicts(actual, expected, tolerance, where)
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return _compare_arrays(torch.tensor(float(actual)), torch.tensor(expected), tolerance, where)
    either_none = actual is None or expected is None  # an Optional result: None is a wrong value, not a type
    if type(actual) is not type(expected) and not (either_none or isinstance(actual, type(expected))):
        return Mismatch("type", f"{where} should be a {_type_name(expected)} but is a {_type_name(actual)}.")
    if actual != expected:
        return Mismatch("values", f"{where} is {actual!r} but should be {expected!r}.")
    return None


def _compare_sequences(actual: Any, expected: tuple | list, tolerance, where: str) -> Mismatch | None:
    if not isinstance(actual, (tuple, list)):
        kind = "tuple" if isinstance(expected, tuple) else "list"
        return Mismatch("type", f"{where} should be a {kind} of {len(expected)} items but is a {_type_name(actual)}."
                        + (" Return both values: `return output, weights`." if len(expected) == 2 else ""))
    if len(actual) != len(expected):
        return Mismatch("shape", f"{where} has {len(actual)} items but should have {len(expected)}.")
    for i, (a, e) in enumerate(zip(actual, expected)):
        mismatch = compare(a, e, _part(tolerance, i), f"{where}[{i}]")
        if mismatch:
            return mismatch
    return None


def _compare_dicts(actual: Any, expected: dict, tolerance, where: str) -> Mismatch | None:
    if not isinstance(actual, dict):
        return Mismatch("type", f"{where} should be a dict but is a {_type_name(actual)}.")
    missing, extra = expected.keys() - actual.keys(), actual.keys() - expected.keys()
    if missing or extra:
        detail = f"missing keys {sorted(missing)[:5]}" if missing else f"unexpected keys {sorted(extra)[:5]}"
        return Mismatch("values", f"{where} has the wrong keys: {detail}.")
    for key in expected:
        mismatch = compare(actual[key], expected[key], _part(tolerance, key), f"{where}[{key!r}]")
        if mismatch:
            return mismatch
    return None


def _compare_arrays(actual: Any, expected: torch.Tensor | np.ndarray, tolerance, where: str) -> Mismatch | None:
    if not isinstance(actual, type(expected)):
        fix = "Build the result with torch operations." if isinstance(expected, torch.Tensor) else \
            "Build the result with NumPy operations (np.asarray converts a list)."
        return Mismatch("type", f"{where} should be a {_type_name(expected)} but is a {_type_name(actual)}. {fix}")
    if tuple(actual.shape) != tuple(expected.shape):
        return Mismatch("shape", f"{where} has shape {tuple(actual.shape)} but should have shape "
                                 f"{tuple(expected.shape)}: {shape_advice(tuple(actual.shape), tuple(expected.shape))}")
    if actual.dtype != expected.dtype:
        return Mismatch("dtype", f"{where} has dtype {actual.dtype} but should have {expected.dtype}, the inputs' "
                                 "dtype. Create new tensors with dtype=x.dtype (or torch.zeros_like / full_like).")
    if isinstance(expected, torch.Tensor) and actual.device != expected.device:
        return Mismatch("device", f"{where} is on {actual.device} but the inputs were on {expected.device}. "
                                  "Create new tensors with device=x.device (or torch.zeros_like / full_like).")
    a = torch.as_tensor(actual).detach().cpu()
    e = torch.as_tensor(expected).detach().cpu()
    if a.dtype == torch.bool or not a.is_floating_point():
        return _compare_exact(a, e, where)
    return _compare_floats(a, e, tolerance, where)


def _compare_exact(actual: torch.Tensor, expected: torch.Tensor, where: str) -> Mismatch | None:
    wrong = actual != expected
    if not wrong.any():
        return None
    first = _index(int(wrong.flatten().nonzero()[0]), tuple(actual.shape))
    return Mismatch("values", f"{where} differs in {int(wrong.sum())} of {wrong.numel()} entries; the first is at "
                              f"index {first}: expected {expected[first].item()!r}, got {actual[first].item()!r}.")


def _compare_floats(actual: torch.Tensor, expected: torch.Tensor, tolerance, where: str) -> Mismatch | None:
    atol, rtol = tolerance if tolerance is not None else (0.0, 0.0)
    bad = ~torch.isfinite(actual) & torch.isfinite(expected)
    if bad.any():
        first = _index(int(bad.flatten().nonzero()[0]), tuple(actual.shape))
        return Mismatch("nan", f"{where} contains {actual[first].item()} at index {first} where "
                               f"{expected[first].item():.6g} is expected. {_non_finite_advice(actual, expected)}")
    missed = ~torch.isfinite(expected) & (actual != expected) & ~(actual.isnan() & expected.isnan())
    if missed.any():
        first = _index(int(missed.flatten().nonzero()[0]), tuple(actual.shape))
        return Mismatch("values", f"{where} differs in {int(missed.sum())} entries where {expected[first].item()} is "
                                  f"expected; the first is at index {first}: got {actual[first].item():.6g}.")
    if torch.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True):
        return None
    error = (actual - expected).abs().nan_to_num(0.0)
    relative = error / expected.abs().clamp_min(atol)
    wrong = error > atol + rtol * expected.abs()
    first = _index(int(wrong.flatten().nonzero()[0]), tuple(actual.shape))
    worst = _index(int(error.flatten().argmax()), tuple(actual.shape))
    shown_expected, shown_actual = distinct(expected[first].item(), actual[first].item())
    return Mismatch(
        "values",
        f"{where} has the right shape but wrong values in {int(wrong.sum())} of {wrong.numel()} entries. "
        f"First difference at index {first}: expected {shown_expected}, got {shown_actual} (off by "
        f"{actual[first].item() - expected[first].item():.3g}). "
        f"Largest absolute error {error.max().item():.3g} (at {worst}), "
        f"largest relative error {relative.max().item():.3g}; allowed: atol={atol:.3g}, rtol={rtol:.3g}.",
    )


def distinct(expected: float, actual: float) -> tuple[str, str]:
    """The two numbers with the fewest significant digits (at least 6) that tell them apart on screen."""
    for digits in range(6, 18):
        shown = f"{expected:.{digits}g}", f"{actual:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return repr(expected), repr(actual)


def _non_finite_advice(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """Why a NaN or inf appears where a finite value belongs. Where the answer itself holds infinities (a
    filter that sets removed logits to -inf), the advice is about which entries get them."""
    if (~torch.isfinite(expected)).any():
        return (f"The right answer has {int((~torch.isfinite(expected)).sum())} non-finite entries and yours has "
                f"{int((~torch.isfinite(actual)).sum())}: this entry must be kept, so check which entries your "
                "condition removes (ties, the boundary, the comparison's direction).")
    return ("NaN and inf come from exp() overflowing, log(0), or 0/0 (for example a row whose every entry is "
            "masked).")


def shape_advice(actual: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """What a wrong shape suggests: dims in another order, a size-1 dim extra or missing (keepdim), one dim of
    another length, or the entries regrouped by a reshape."""
    if len(actual) == len(expected) and sorted(actual) == sorted(expected):
        return "the same dims in another order: a transpose or permute is missing, extra, or over other dims."
    for longer, shorter, words in ((actual, expected, "has an extra"), (expected, actual, "lacks the")):
        if len(longer) == len(shorter) + 1:
            ones = [i for i in range(len(longer)) if longer[i] == 1 and longer[:i] + longer[i + 1:] == shorter]
            if ones:
                fix = "squeeze it, or reduce without keepdim=True" if words == "has an extra" else \
                    "reduce with keepdim=True, or unsqueeze"
                return f"it {words} dim of size 1 at position {ones[0]}: {fix}."
    if len(actual) == len(expected):
        differing = [i for i in range(len(actual)) if actual[i] != expected[i]]
        if len(differing) == 1:
            d = differing[0]
            return (f"dim {d} has {actual[d]} entries where {expected[d]} are expected, the others are right: "
                    "check that dim's length (positions cut or added, the wrong input's length, a size off by one).")
    if math.prod(actual) == math.prod(expected):
        return "the same number of entries grouped differently: check the shape you reshape or view to."
    return "check which dimensions you reduce, transpose or reshape."
