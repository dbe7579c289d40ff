"""Checking a module in training mode: the same dropout masks for the reference and the learner's module.

Dropout draws its masks from PyTorch's global random generator. A case that runs a module
in training mode puts the module in ``train()`` and seeds that generator with the case's
seed at the start of every forward call (restoring its state at the end), so a module
that applies ``nn.Dropout`` at the same places as the reference, to tensors of the same
shapes and in the same order, draws the same masks and computes the same output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _generators(device: torch.device) -> list[torch.Generator]:
    """The global generators a forward call on ``device`` draws from: the CPU's, and the GPU's for a CUDA device."""
    if device.type != "cuda":
        return [torch.default_generator]
    index = device.index if device.index is not None else torch.cuda.current_device()
    return [torch.default_generator, torch.cuda.default_generators[index]]


def train_with_fixed_masks(module: nn.Module, seed: int, device: torch.device) -> nn.Module:
    """Put ``module`` in training mode, each of its forward calls drawing its random numbers from the global
    generators of ``device`` seeded with ``seed``; their states are restored when the call ends, whether it
    returns or raises."""
    generators = _generators(device)
    saved: list[list[torch.Tensor]] = []

    def seed_generators(_module: nn.Module, _args: Any) -> None:
        saved.append([generator.get_state() for generator in generators])
        for generator in generators:
            generator.manual_seed(seed)

    def restore_generators(_module: nn.Module, _args: Any, _output: Any) -> None:
        for generator, state in zip(generators, saved.pop() if saved else ()):
            generator.set_state(state)

    module.train()
    module.register_forward_pre_hook(seed_generators)
    module.register_forward_hook(restore_generators, always_call=True)
    return module
