"""Checking classes: load the reference's weights in by member name, then take gradients.

Both helpers work on plain tensors (a state dict), so that they run on the grading
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
        members = sorted({name.split(".")[0] for name in weights})
        return None, Mismatch("type", f"your module has no parameter {missing[0]!r}. Name its members "
                                      f"{', '.join(members)} as in the exercise, so the checker can copy weights in.")
    wrong_shape = [n for n in weights if theirs[n].shape != weights[n].shape]
    if wrong_shape:
        name = wrong_shape[0]
        return None, Mismatch("shape", f"parameter {name!r} has shape {tuple(theirs[name].shape)} but should have "
                                       f"{tuple(weights[name].shape)}.")
    learner = learner.to(device, dtype).eval()
    learner.load_state_dict(weights, strict=False)
    return learner, None


def gradients_by_name(module: nn.Module, output: Any) -> dict[str, torch.Tensor]:
    """Gradients of ``sum(output_0 * w)`` for a fixed pseudo-random ``w``, keyed by parameter name."""
    first = output[0] if isinstance(output, (tuple, list)) else output
    weights = torch.linspace(-1, 1, first.numel(), dtype=first.dtype, device=first.device).reshape(first.shape)
    module.zero_grad(set_to_none=True)
    (first * weights).sum().backward()
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}
