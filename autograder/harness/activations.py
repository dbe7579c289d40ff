"""Recording what a module's sub-modules receive and return, with forward hooks.

When a module's output is wrong, the judge walks the reference's sub-module calls next to the
learner's to say which step first goes wrong (:mod:`autograder.sublayers`). Both sides record
the same way: a hook on every named sub-module (``named_modules()``, the root excluded) keeps
the tensors of the FIRST call of each, in the order the calls begin and end, as a list of
*steps*

    [module name, "input" | "output", {key: tensor} | None]

where an input's keys are its positions (``"0"``, ``"1"``, ...) and keyword names, and an
output's are positions in its tuple (``"0"`` for a tensor returned alone). Tensors are detached
copies: recording changes neither the output nor the gradients. A step whose tensors would
exceed :data:`MODULE_BYTES`, or come after :data:`TOTAL_BYTES` in all, keeps ``None``. The
list is plain data, so the grading sandbox sends it back as it is (:mod:`autograder.harness.wire`);
:func:`steps_from_plain` is the strict reading of such a list on the trusted side.

Learner modules may be hostile: a hook that fails records nothing, and every hook is removed
when the block ends, however it ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

INPUT, OUTPUT = "input", "output"
MODULE_BYTES = 1 << 20  # one sub-module's recorded tensors, inputs and outputs together
TOTAL_BYTES = 4 << 20  # one forward call's recorded tensors
MAX_MODULES = 256  # sub-modules hooked
MAX_TENSORS = 8  # tensors kept of one input or output
NAME_CHARS = 200  # longest module name kept
KEY_CHARS = 64  # longest keyword name kept


@dataclass(frozen=True)
class Step:
    """One moment of a forward call: sub-module ``module`` receiving ``tensors`` (``kind`` "input") or returning
    them ("output"); ``tensors`` is ``None`` when they were too large to keep."""

    module: str
    kind: str
    tensors: dict[str, torch.Tensor] | None


def tensors_of(value: Any) -> dict[str, torch.Tensor]:
    """The tensors of an output: ``{"0": value}`` for a tensor, ``{"i": item}`` for each tensor of a tuple or list
    (``(output, weights)``); detached copies, at most :data:`MAX_TENSORS`."""
    items = value if type(value) in (tuple, list) else (value,)
    return {str(i): _copy(item) for i, item in enumerate(items[:MAX_TENSORS]) if isinstance(item, torch.Tensor)}


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    copied = torch.Tensor.detach(tensor).clone()
    return copied if type(copied) is torch.Tensor else copied.as_subclass(torch.Tensor)


def _arguments(args: tuple, kwargs: dict) -> dict[str, torch.Tensor]:
    """The tensors a call receives, by position and keyword (at most :data:`MAX_TENSORS`)."""
    named = [(str(i), value) for i, value in enumerate(args)]
    named += [(key, value) for key, value in kwargs.items() if type(key) is str and len(key) <= KEY_CHARS]
    return {key: _copy(value) for key, value in named if isinstance(value, torch.Tensor)}


def _size(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class _Recorder:
    """The steps of one forward call, kept within the size caps."""

    def __init__(self) -> None:
        self.steps: list[list] = []
        self.seen: set[tuple[str, str]] = set()
        self.module_bytes: dict[str, int] = {}
        self.total = 0

    def record(self, name: str, kind: str, tensors: dict[str, torch.Tensor]) -> None:
        if (name, kind) in self.seen or (kind == OUTPUT and (name, INPUT) not in self.seen):
            return  # a later call, or the end of a call whose beginning was not seen
        self.seen.add((name, kind))
        size = _size(tensors)
        used = self.module_bytes.get(name, 0) + size
        kept = len(tensors) <= MAX_TENSORS and used <= MODULE_BYTES and self.total + size <= TOTAL_BYTES
        if kept:
            self.module_bytes[name], self.total = used, self.total + size
        self.steps.append([name, kind, tensors if kept else None])

    def hooks(self, name: str) -> tuple:
        def before(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            try:
                self.record(name, INPUT, _arguments(args, kwargs))
            except Exception:  # a hostile input records nothing
                pass

        def after(_module: nn.Module, _args: tuple, _kwargs: dict, output: Any) -> None:
            try:
                self.record(name, OUTPUT, tensors_of(output))
            except Exception:  # a hostile output records nothing
                pass
        return before, after


@contextmanager
def recording(module: Any, enabled: bool = True) -> Iterator[list]:
    """Within the block, the steps (plain data, see the module docstring) of ``module``'s sub-modules are appended
    to the list this yields; it stays empty when ``enabled`` is false or ``module`` cannot be hooked."""
    recorder, handles = _Recorder(), []
    try:
        if enabled and isinstance(module, nn.Module):
            handles = _hook(module, recorder)
        yield recorder.steps
    finally:
        for handle in handles:
            try:
                handle.remove()
            except Exception:  # a handle a hostile module broke: nothing more can be done with it
                pass


def _hook(module: nn.Module, recorder: _Recorder) -> list:
    """Hook the named sub-modules of ``module``; the handles to remove. One that refuses its hooks, or a
    ``named_modules`` that fails, leaves the rest as far as it got."""
    handles: list = []
    try:
        named = list(itertools.islice(module.named_modules(), MAX_MODULES + 1))
    except Exception:  # a hostile module that cannot list its sub-modules is not recorded
        return handles
    for name, sub in named:
        if type(name) is not str or not 0 < len(name) <= NAME_CHARS:
            continue
        before, after = recorder.hooks(name)
        try:
            handles.append(sub.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(sub.register_forward_hook(after, with_kwargs=True))
        except Exception:  # a sub-module that refuses hooks records nothing
            continue
    return handles


def steps_from_plain(value: Any) -> list[Step] | None:
    """The steps a recording holds, read strictly (it may come from the sandbox): ``None`` for anything that is not
    a list of at most ``2 * MAX_MODULES`` distinct steps, each ``[name, kind, None or {key: tensor}]`` within the
    caps above."""
    if type(value) is not list or len(value) > 2 * MAX_MODULES:
        return None
    steps, seen = [], set()
    for item in value:
        step = _step(item)
        if step is None or (step.module, step.kind) in seen:
            return None
        seen.add((step.module, step.kind))
        steps.append(step)
    return steps


def _step(item: Any) -> Step | None:
    if type(item) not in (list, tuple) or len(item) != 3:
        return None
    name, kind, tensors = item
    if type(name) is not str or not 0 < len(name) <= NAME_CHARS or kind not in (INPUT, OUTPUT):
        return None
    if tensors is None:
        return Step(name, kind, None)
    if type(tensors) is not dict or len(tensors) > MAX_TENSORS or not all(
            type(k) is str and len(k) <= KEY_CHARS and type(t) is torch.Tensor for k, t in tensors.items()):
        return None
    return Step(name, kind, tensors)
