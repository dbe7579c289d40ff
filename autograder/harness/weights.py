"""Checking classes: load the reference's weights in by member name, then take gradients.

The gradients compared are those of one scalar, a fixed projection of the output
(:func:`projection`): a module's parameters' and, for a module or a function whose
exercise compares them, the floating-point inputs' (:func:`track_inputs`), so that code
that cuts part of its computation off from autograd (``.detach()``, ``.data``,
``torch.no_grad()``, a NumPy round trip) fails even when its output is right.

The helpers work on plain tensors (a state dict), so that they run on the grading
sandbox's side as well as in the learner's kernel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autograder.harness.mismatch import Mismatch


def load_weights_by_name(
    learner: Any, weights: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> tuple[nn.Module | None, Mismatch | None]:
    """Move ``learner`` to ``device``/``dtype`` and load ``weights`` (the reference's state dict)
    into the parameters of the same names; a :class:`Mismatch` when a name or shape is missing."""
    if not isinstance(learner, nn.Module):
        return None, Mismatch("type", f"your class should subclass torch.nn.Module; an instance is a "
                                      f"{type(learner).__name__}. Call super().__init__() first in __init__.")
    theirs = learner.state_dict()
    missing = [name for name in weights if name not in theirs]
    if missing:
        return None, Mismatch("type", _unregistered(learner, missing[0]) or (
            f"your module has no parameter {missing[0]!r}. Name its members "
            f"{', '.join(sorted({name.split('.')[0] for name in weights}))} as in the exercise, so the checker "
            "can copy weights in."))
    wrong_shape = [n for n in weights if theirs[n].shape != weights[n].shape]
    if wrong_shape:
        name = wrong_shape[0]
        return None, Mismatch("shape", f"parameter {name!r} has shape {tuple(theirs[name].shape)} but should have "
                                       f"{tuple(weights[name].shape)}.")
    learner = learner.to(device, dtype).eval()
    learner.load_state_dict(weights, strict=False)
    return learner, None


def _unregistered(learner: nn.Module, name: str) -> str | None:
    """Why the parameter ``name`` is missing when the member holding it is a plain Python list, tuple or dict of
    modules, whose parameters a module does not register; ``None`` otherwise."""
    member = getattr(learner, name.split(".")[0], None)
    values = member.values() if isinstance(member, dict) else member if isinstance(member, (list, tuple)) else ()
    if not any(isinstance(value, nn.Module) for value in values):
        return None
    container = "nn.ModuleDict" if isinstance(member, dict) else "nn.ModuleList"
    return (f"your module has no parameter {name!r}: `{name.split('.')[0]}` is a Python {type(member).__name__}, "
            "whose modules a module does not register (their parameters are neither trained nor saved). "
            f"Hold them in an {container}(...).")


INPUT = "input "  # the prefix of an input's gradient among the gradients by name (no parameter name has a space)


def projection(output: Any) -> torch.Tensor:
    """``sum(output_0 * w)`` for a fixed pseudo-random ``w`` (evenly spaced from -1 to 1): the scalar whose
    gradients are compared; ``output_0`` is the output, or the first item of a tuple or list of outputs."""
    first = output[0] if isinstance(output, (tuple, list)) else output
    weights = torch.linspace(-1, 1, first.numel(), dtype=first.dtype, device=first.device).reshape(first.shape)
    return (first * weights).sum()


def track_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict, dict[str, torch.Tensor]]:
    """``args`` and ``kwargs`` with each floating-point tensor among them replaced by a copy that autograd tracks
    back to a leaf of its own, and those leaves by name: a position's index ("0"), a keyword argument's key (a
    tensor passed at several places, ``x, x, x``, is a leaf at each, so each place's gradient is its own). The
    copies are not leaves themselves, so code that edits one in place is told so by the input check instead of
    failing inside autograd. Other inputs (integer or boolean tensors, modules, numbers) are passed through."""
    leaves: dict[str, torch.Tensor] = {}

    def tracked(name: str, value: Any) -> Any:
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            return value
        leaves[name] = value.detach().clone().requires_grad_()
        return leaves[name].clone()

    args = tuple(tracked(str(i), value) for i, value in enumerate(args))
    return args, {name: tracked(name, value) for name, value in kwargs.items()}, leaves


def gradients_by_name(module: nn.Module | None, output: Any,
                      inputs: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Gradients of :func:`projection` of ``output``: of ``module``'s parameters, keyed by name, and of each
    tracked input (:func:`track_inputs`), keyed ``"input NAME"``; a parameter or an input that the output does not
    depend on through autograd has none. For a function (no ``module``) whose output depends on no input, none."""
    loss = projection(output)
    if module is not None:
        module.zero_grad(set_to_none=True)
    elif not loss.requires_grad:
        return {}
    loss.backward()
    gradients = {name: p.grad for name, p in module.named_parameters() if p.grad is not None} if module else {}
    gradients.update({INPUT + name: leaf.grad for name, leaf in (inputs or {}).items() if leaf.grad is not None})
    return gradients
