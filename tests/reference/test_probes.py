"""Probes: gradient norms per layer, recorded attention weights, input dependence."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tfcourse.attention import scaled_dot_product_attention
from tfcourse.model import Block, GPTConfig
from tfcourse.multihead import MultiHeadAttention, split_heads
from tfcourse.probes import (
    input_dependence,
    parameter_gradient_norms,
    recorded_attention,
)


def test_parameter_gradient_norms_are_the_norms_of_each_modules_gradients():
    layers = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])
    layers[1](layers[0](torch.randn(5, 3))).pow(2).sum().backward()
    expected = [torch.cat([p.grad.flatten() for p in layer.parameters()]).norm().item() for layer in layers]
    assert parameter_gradient_norms(layers) == pytest.approx(expected)


def test_parameter_gradient_norms_count_a_module_without_gradients_as_zero():
    used, unused = nn.Linear(3, 3), nn.Linear(3, 3)
    used(torch.randn(2, 3)).sum().backward()
    assert parameter_gradient_norms([used, unused])[1] == 0.0


def test_parameter_gradient_norms_explain_a_missing_backward():
    with pytest.raises(ValueError, match="backward"):
        parameter_gradient_norms([nn.Linear(3, 3)])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
def test_recorded_attention_returns_the_weights_and_restores_the_module(device, fused):
    mha = MultiHeadAttention(16, 4, fused=fused).to(device)
    query, memory = torch.randn(2, 3, 16, device=device), torch.randn(2, 5, 16, device=device)
    with torch.no_grad(), recorded_attention({"cross": mha}) as weights:
        output, _ = mha(query, memory, memory)
    q = split_heads(mha.q_proj(query), 4)
    k = split_heads(mha.k_proj(memory), 4)
    v = split_heads(mha.v_proj(memory), 4)
    _, expected = scaled_dot_product_attention(q, k, v)
    assert_close(weights["cross"], expected.detach())
    assert mha.fused is fused
    assert not mha._forward_hooks
    with torch.no_grad():
        assert_close(mha(query, memory, memory)[0], output, atol=1e-5, rtol=1e-4)


def test_recorded_attention_restores_the_module_when_the_block_fails():
    mha = MultiHeadAttention(8, 2, fused=True)
    with pytest.raises(RuntimeError, match="inside"), recorded_attention({"attn": mha}):
        raise RuntimeError("inside the block")
    assert mha.fused and not mha._forward_hooks


def test_recorded_attention_rejects_other_modules():
    not_ours = {"torch": nn.MultiheadAttention(8, 2)}
    with pytest.raises(TypeError, match="not a tfcourse MultiHeadAttention"), recorded_attention(not_ours):
        pass


def test_input_dependence_of_a_linear_map_is_the_norm_of_its_blocks():
    mixing = torch.randn(3, 4)  # output position t = sum_s mixing[t, s] * x_s, same feature
    x = torch.randn(4, 5, dtype=torch.float64)
    dependence = input_dependence(lambda x: mixing.double() @ x, x)
    assert_close(dependence, mixing.double().abs() * 5**0.5)


def test_input_dependence_sees_the_causal_mask():
    layer = Block(GPTConfig(d_model=16, n_heads=4, d_ff=32)).double().eval()
    x = torch.randn(6, 16, dtype=torch.float64)
    dependence = input_dependence(lambda x: layer(x[None])[0], x)
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert torch.all(dependence[future] == 0)
    assert torch.all(dependence[~future] > 0)


def test_input_dependence_asks_for_positions_and_features():
    with pytest.raises(ValueError, match="positions, features"):
        input_dependence(lambda x: x, torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="must map"):
        input_dependence(lambda x: x.sum(), torch.randn(3, 4))
