"""AdamW and gradient-norm clipping, written out.

``AdamW`` is Adam with decoupled weight decay (Loshchilov & Hutter, 2019), the optimiser
nearly every Transformer is trained with; ``clip_grad_norm`` rescales the gradients when
their global norm is too large (Pascanu et al., 2013). Both follow PyTorch's
``torch.optim.AdamW`` and ``torch.nn.utils.clip_grad_norm_`` (same arguments, defaults and
results; the tests check that they agree), written step by step for reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay.

    For each parameter ``theta`` with gradient ``g``, at step ``t = 1, 2, ...``:

        theta <- theta - lr * weight_decay * theta       (decoupled weight decay)
        m <- beta1 * m + (1 - beta1) * g                  (first moment: mean of g)
        v <- beta2 * v + (1 - beta2) * g**2               (second moment: mean of g**2)
        m_hat = m / (1 - beta1**t)                        (bias correction: m and v
        v_hat = v / (1 - beta2**t)                         start at zero)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    The decay shrinks the weights directly instead of adding ``weight_decay * theta`` to
    ``g``, where Adam's division by ``sqrt(v_hat)`` would rescale it per parameter.
    ``m`` and ``v`` live in ``self.state[theta]`` as ``"exp_avg"`` and ``"exp_avg_sq"``,
    next to the step count ``"step"``, so ``state_dict`` / ``load_state_dict`` save and
    resume a run. Parameters whose ``grad`` is ``None`` are left unchanged.

    Args:
        params: parameters, or parameter groups (dicts with ``"params"`` and any of the
            options below, which override the defaults for that group).
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)`` of the two moment averages.
        eps: added to ``sqrt(v_hat)`` against division by zero.
        weight_decay: decoupled weight-decay coefficient (0 turns AdamW into Adam).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"invalid eps: {eps}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"invalid betas: {betas} (each must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        """The update equations of the class docstring, in place, for one parameter."""
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        t, m, v, g = state["step"], state["exp_avg"], state["exp_avg_sq"], param.grad
        param.mul_(1 - lr * group["weight_decay"])
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        param.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def clip_grad_norm(parameters: Tensor | Iterable[Tensor], max_norm: float, eps: float = 1e-6) -> Tensor:
    """Scale all gradients together so that their global L2 norm is at most about ``max_norm``.

        norm = sqrt(sum over parameters p of sum(p.grad**2))
        if norm > max_norm:  p.grad <- p.grad * max_norm / (norm + eps)  for every p

    One norm over all the gradients, as if they were one long vector, so clipping keeps the
    direction of the update and only shortens it. Parameters whose ``grad`` is ``None`` are
    skipped. Returns ``norm``, measured before clipping (a 0-dim tensor; 0 when no
    parameter has a gradient), as ``torch.nn.utils.clip_grad_norm_`` does.
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    grads = [param.grad for param in parameters if param.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.sqrt(sum((grad * grad).sum() for grad in grads))
    if norm > max_norm:
        scale = max_norm / (norm + eps)
        for grad in grads:
            grad.mul_(scale)
    return norm
