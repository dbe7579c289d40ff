"""Did the learner's code change its inputs in place? A function that edits the caller's tensor
(``logits.masked_fill_(...)`` on its argument) returns the right values and is still wrong.

:func:`changed_input` compares the inputs after a call with a copy taken before it; tensors
and arrays are compared value by value (NaN equal to NaN), sequences and dicts item by item.
Other objects (a model passed as a callable) are not compared.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import torch


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and before.shape == after.shape and before.dtype == after.dtype
                and bool(((before == after) | (before != before) & (after != after)).all()))
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or before.shape != after.shape or before.dtype != after.dtype:
            return False
        try:
            return bool(np.array_equal(before, after, equal_nan=True))
        except TypeError:  # an array of objects has no NaN to compare
            return bool(np.array_equal(before, after))
    if isinstance(before, (tuple, list)):
        return isinstance(after, (tuple, list)) and len(before) == len(after) and all(map(_same, before, after))
    if isinstance(before, dict):
        return (isinstance(after, dict) and before.keys() == after.keys()
                and all(_same(before[key], after[key]) for key in before))
    return True


def _parameter_names(fn: Callable) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin or an object without a signature: positions only
        return []


def changed_input(fn: Callable, before: tuple[tuple, dict], args: tuple, kwargs: dict) -> str | None:
    """The name of the first argument ``fn`` changed in place (``before`` is a copy of ``(args, kwargs)``
    taken before the call), else ``None``."""
    names = _parameter_names(fn)
    for position, (old, new) in enumerate(zip(before[0], args)):
        if not _same(old, new):
            return f"`{names[position]}`" if position < len(names) else f"argument {position + 1}"
    for name, old in before[1].items():
        if not _same(old, kwargs.get(name)):
            return f"`{name}`"
    return None
