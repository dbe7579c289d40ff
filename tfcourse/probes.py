"""Looking inside a model: gradient norms per layer, attention weights, input dependence.

These are the measurements behind the figures of lessons 04 and 05:

* :func:`parameter_gradient_norms` shows how strongly each layer of a stack is trained
  (the pre-LN vs post-LN gradient-flow picture);
* :func:`recorded_attention` keeps the attention weights that
  :class:`~tfcourse.multihead.MultiHeadAttention` modules compute (the cross-attention
  heatmaps of an encoder-decoder);
* :func:`input_dependence` measures which input positions each output position can see
  (the information-flow picture of encoder, decoder and cross-attention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from tfcourse.multihead import MultiHeadAttention


def parameter_gradient_norms(modules: Iterable[nn.Module]) -> list[float]:
    """The L2 norm of the gradient of each module's parameters, after ``loss.backward()``.

    For module ``l`` with parameters ``theta_l`` this is ``||d loss / d theta_l||_2``, all
    its parameters' gradients taken together as one vector. Parameters without a gradient
    count as zero.

    Raises:
        ValueError: when no module has any gradient (``backward`` was not called).
    """
    norms = [_gradient_norm(module) for module in modules]
    if not any(norm > 0 for norm in norms):
        raise ValueError("no module has a gradient: call loss.backward() before measuring gradient norms")
    return norms


def _gradient_norm(module: nn.Module) -> float:
    squares = [p.grad.double().pow(2).sum() for p in module.parameters() if p.grad is not None]
    return torch.stack(squares).sum().sqrt().item() if squares else 0.0


@contextmanager
def recorded_attention(modules: Mapping[str, MultiHeadAttention]) -> Iterator[dict[str, Tensor]]:
    """Record the attention weights each named module computes inside the ``with`` block.

    Yields a dict that fills as the modules run: ``weights[name]`` is the latest
    ``(batch, heads, q_len, k_len)`` weight tensor of module ``name`` (detached). Fused
    modules, which do not form the weights, switch to the explicit maths for the block
    (same numbers) and switch back afterwards.

    Example::

        with recorded_attention({"cross": layer.cross_attn}) as weights:
            model(src, tgt)
        weights["cross"]  # (B, heads, Lt, Ls)
    """
    for name, module in modules.items():
        if not isinstance(module, MultiHeadAttention):
            raise TypeError(f"{name!r} is a {type(module).__name__}, not a tfcourse MultiHeadAttention")
    weights: dict[str, Tensor] = {}
    was_fused = {name: module.fused for name, module in modules.items()}
    hooks = [module.register_forward_hook(_weight_recorder(weights, name)) for name, module in modules.items()]
    try:
        for module in modules.values():
            module.fused = False
        yield weights
    finally:
        for hook in hooks:
            hook.remove()
        for name, module in modules.items():
            module.fused = was_fused[name]


def _weight_recorder(weights: dict[str, Tensor], name: str) -> Callable:
    """A forward hook storing the second output (the weights) of an attention module."""

    def record(module: nn.Module, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        weights[name] = output[1].detach()

    return record


def input_dependence(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """How strongly each output position depends on each input position.

    For ``y = function(x)`` with ``x``: ``(in_len, d_in)`` and ``y``: ``(out_len, d_out)``,
    returns ``D`` of shape ``(out_len, in_len)`` with

        D[t, s] = || d y_t / d x_s ||_F

    the Frobenius norm of the ``(d_out, d_in)`` Jacobian block linking input position
    ``s`` to output position ``t``. ``D[t, s] == 0`` means output ``t`` cannot see input
    ``s`` (a causal mask, or no path from ``s`` to ``t``).
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (positions, features), got shape {tuple(x.shape)}; drop the batch dimension")
    jacobian = torch.autograd.functional.jacobian(function, x)  # (out_len, d_out, in_len, d_in)
    if jacobian.dim() != 4:
        raise ValueError("function must map (positions, features) to (positions, features)")
    return jacobian.pow(2).sum(dim=(1, 3)).sqrt()
