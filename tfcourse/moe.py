"""A mixture-of-experts feed-forward layer: each token is routed to ``top_k`` of ``n_experts`` SwiGLU networks.

A router (a bias-free linear map) scores every expert for every token; the token goes to
its ``k`` best experts, whose outputs are mixed with the renormalised router
probabilities (Mixtral's top-2 routing; ``k = 1`` is the Switch Transformer's):

    p = softmax(router(x)),    y = sum_{e in top_k(p)} p_e / (sum_{e' in top_k(p)} p_e') * expert_e(x)

The layer holds ``n_experts`` times the parameters of one expert but each token pays for
only ``k`` of them. A router left alone sends most tokens to a few experts; the Switch
Transformer's load-balancing loss ``n_experts * sum_i f_i P_i`` (``f_i`` the share of routing
assignments expert ``i`` receives, ``P_i`` its mean router probability) is smallest, 1,
when both are uniform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfcourse.attention import softmax
from tfcourse.layers import SwiGLU


def top_k_routing(router_logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``router_logits (..., n_experts) -> (weights (..., k), indices (..., k))``, best expert first.

    ``indices`` are the ``k`` experts of highest router probability for each token;
    ``weights`` their probabilities renormalised to sum to 1, which equals a softmax over
    the ``k`` chosen logits alone.
    """
    top_logits, indices = router_logits.topk(k, dim=-1)  # (N, k) each, in decreasing order
    return softmax(top_logits, dim=-1), indices


def expert_fractions(expert_indices: Tensor, n_experts: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``f``, ``(n_experts,)`` in ``dtype``: the share of the assignments in ``expert_indices (..., k)`` each expert receives."""
    assignments = F.one_hot(expert_indices.reshape(-1), n_experts)  # (N k, n_experts)
    return assignments.to(dtype).mean(dim=0)


def load_balancing_loss(router_logits: Tensor, expert_indices: Tensor) -> Tensor:
    """The Switch Transformer's auxiliary loss ``n_experts * sum_i f_i P_i``, a scalar.

    ``router_logits (..., n_experts)``, one row per token (``N`` tokens in all); ``expert_indices
    (..., k)`` the chosen experts (from :func:`top_k_routing`). ``f_i`` is the share of the
    ``N k`` assignments expert ``i`` receives (counts, no gradient), ``P_i`` the mean of its
    router probability over the tokens (differentiable). The loss is 1 when routing is uniform and ``n_experts`` when every
    token goes to one expert with certainty; its gradient lowers the probabilities of the
    experts that receive the most tokens.
    """
    n_experts = router_logits.size(-1)
    mean_probs = softmax(router_logits, dim=-1).reshape(-1, n_experts).mean(dim=0)  # P, (n_experts,)
    fractions = expert_fractions(expert_indices, n_experts, mean_probs.dtype)  # f, (n_experts,)
    return n_experts * (fractions * mean_probs).sum()


class MoEFeedForward(nn.Module):
    """A sparse feed-forward layer: ``n_experts`` :class:`~tfcourse.layers.SwiGLU` experts and a top-``k`` router.

    Members ``router`` (``nn.Linear(d_model, n_experts, bias=False)``) and ``experts``
    (``nn.ModuleList`` of ``SwiGLU(d_model, d_ff)``).
    ``forward(x (..., d_model)) -> (y (..., d_model), load-balancing loss)``; each expert runs
    only on the tokens routed to it.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int = 2):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts ({n_experts}), got {top_k}")
        self.top_k = top_k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d_model, d_ff) for _ in range(n_experts))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens = x.reshape(-1, x.size(-1))  # (N, d)
        router_logits = self.router(tokens)  # (N, n_experts)
        weights, indices = top_k_routing(router_logits, self.top_k)  # (N, k) each
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_ids, slot = (indices == e).nonzero(as_tuple=True)  # the tokens routed to e, and where
            if token_ids.numel():
                out = out.index_add(0, token_ids, weights[token_ids, slot, None] * expert(tokens[token_ids]))
        return out.reshape(x.shape), load_balancing_loss(router_logits, indices)
