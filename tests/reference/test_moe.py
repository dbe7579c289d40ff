"""Mixture-of-experts: top-k routing, the load-balancing loss and the sparse layer against a dense computation."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tfcourse.moe import (
    MoEFeedForward,
    expert_fractions,
    load_balancing_loss,
    top_k_routing,
)


def dense_gates(router_logits: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, n_experts)`` mixing weights: the softmax probabilities outside each token's k largest set to 0, renormalised."""
    probs = F.softmax(router_logits, dim=-1)
    kth_largest = probs.sort(dim=-1, descending=True).values[:, k - 1:k]
    kept = torch.where(probs >= kth_largest, probs, torch.zeros_like(probs))
    return kept / kept.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_routing_keeps_the_k_most_probable_experts_renormalised(device, dtype, tol, k):
    logits = torch.randn(10, 5, device=device, dtype=dtype)
    weights, indices = top_k_routing(logits, k)
    assert indices.shape == weights.shape == (10, k)
    assert_close(torch.zeros_like(logits).scatter(1, indices, weights), dense_gates(logits, k), **tol)
    assert (weights[:, :-1] >= weights[:, 1:]).all(), "the best expert comes first"


def test_the_loss_is_n_experts_sum_of_f_times_p(device, dtype, tol):
    logits = torch.randn(12, 4, device=device, dtype=dtype)
    _, indices = top_k_routing(logits, 2)
    counts = torch.bincount(indices.flatten(), minlength=4).to(dtype)
    expected = 4 * (counts / counts.sum() * F.softmax(logits, dim=-1).mean(dim=0)).sum()
    assert_close(load_balancing_loss(logits, indices), expected, **tol)


def test_the_loss_is_1_when_uniform_and_n_experts_when_collapsed():
    uniform = torch.zeros(8, 4, dtype=torch.float64)
    assert_close(load_balancing_loss(uniform, torch.arange(8)[:, None] % 4), torch.tensor(1.0, dtype=torch.float64))
    collapsed = torch.tensor([[60.0, 0.0, 0.0, 0.0]], dtype=torch.float64).repeat(8, 1)
    assert_close(load_balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long)),
                 torch.tensor(4.0, dtype=torch.float64))


def test_the_loss_pushes_probability_away_from_the_busiest_expert():
    logits = torch.randn(16, 4, dtype=torch.float64, requires_grad=True)
    indices = torch.zeros(16, 1, dtype=torch.long)  # every token sent to expert 0
    load_balancing_loss(logits, indices).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def test_expert_fractions_sum_to_one():
    f = expert_fractions(torch.tensor([[0, 1], [0, 2], [0, 1]]), 4)
    assert_close(f, torch.tensor([0.5, 2 / 6, 1 / 6, 0.0]))


@pytest.mark.parametrize("top_k", [1, 2])
def test_the_sparse_layer_equals_a_dense_mixture_of_every_expert(device, dtype, tol, top_k):
    layer = MoEFeedForward(8, 16, n_experts=4, top_k=top_k).to(device, dtype)
    x = torch.randn(3, 5, 8, device=device, dtype=dtype)
    y, loss = layer(x)
    tokens = x.reshape(-1, 8)
    gates = dense_gates(F.linear(tokens, layer.router.weight), top_k)  # (N, 4)
    outputs = torch.stack([e.w2(F.silu(e.w1(tokens)) * e.w3(tokens)) for e in layer.experts], dim=1)  # (N, 4, d)
    assert_close(y, (gates[..., None] * outputs).sum(dim=1).reshape(x.shape), **tol)
    assert loss.shape == ()


def test_the_router_learns_from_both_the_output_and_the_loss():
    layer = MoEFeedForward(8, 16, n_experts=4, top_k=2).double()
    x = torch.randn(6, 8, dtype=torch.float64)
    for term in (lambda y, loss: y.square().mean(), lambda y, loss: loss):
        layer.zero_grad()
        term(*layer(x)).backward()
        assert layer.router.weight.grad.abs().sum() > 0


def test_top_k_must_be_at_most_n_experts():
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(8, 16, n_experts=2, top_k=3)
