"""Feed-forward networks, normalisation and residuals against PyTorch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from tfcourse.layers import (
    FeedForward,
    LayerNorm,
    ResidualConnection,
    RMSNorm,
    SwiGLU,
    gelu,
    layer_norm,
    rms_norm,
    silu,
)

D = 12


def test_gelu_matches_torch_exact_gelu(device, dtype, tol):
    x = torch.linspace(-6, 6, 101, device=device, dtype=dtype)
    assert_close(gelu(x), F.gelu(x), **tol)


def test_silu_matches_torch_silu(device, dtype, tol):
    x = torch.cat([torch.linspace(-8, 8, 101), torch.tensor([-1e4, -800.0, -100.0, 100.0, 800.0, 1e4])])
    x = x.to(device, dtype)
    assert_close(silu(x), F.silu(x), **tol)
    assert torch.isfinite(silu(x)).all()


def test_silu_gradient_is_exact_and_finite_for_large_inputs(device):
    x = torch.randn(2, 7, device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(silu, (x,))
    extreme = torch.tensor([-1e4, -800.0, 800.0, 1e4], device=device, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(silu(extreme).sum(), extreme)
    (expected,) = torch.autograd.grad(F.silu(extreme).sum(), extreme)
    assert_close(grad, expected, atol=1e-12, rtol=0)


def test_layer_norm_matches_torch(device, dtype, tol):
    x = torch.randn(3, 5, D, device=device, dtype=dtype) * 4 + 2
    weight, bias = torch.randn(D, device=device, dtype=dtype), torch.randn(D, device=device, dtype=dtype)
    assert_close(layer_norm(x, weight, bias), F.layer_norm(x, (D,), weight, bias), **tol)
    assert_close(layer_norm(x, weight, bias, eps=0.1), F.layer_norm(x, (D,), weight, bias, eps=0.1), **tol)


def test_layer_norm_module_matches_torch_module(device, dtype, tol):
    reference = nn.LayerNorm(D).to(device, dtype)
    nn.init.normal_(reference.weight), nn.init.normal_(reference.bias)
    ours = LayerNorm(D).to(device, dtype)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(4, D, device=device, dtype=dtype)
    assert_close(ours(x), reference(x), **tol)
    assert_close(ours(x), layer_norm(x, ours.weight, ours.bias), **tol)


def test_rms_norm_matches_torch(device, dtype, tol):
    x = torch.randn(3, 5, D, device=device, dtype=dtype)
    reference = nn.RMSNorm(D, eps=1e-6).to(device, dtype)
    nn.init.normal_(reference.weight)
    ours = RMSNorm(D).to(device, dtype)
    ours.load_state_dict(reference.state_dict())
    assert_close(rms_norm(x, reference.weight), reference(x), **tol)
    assert_close(ours(x), reference(x), **tol)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward_is_expand_activate_contract(device, dtype, tol, activation):
    ff = FeedForward(D, 4 * D, activation).to(device, dtype)
    x = torch.randn(2, 3, D, device=device, dtype=dtype)
    act = {"relu": F.relu, "gelu": gelu, "gelu_tanh": lambda h: F.gelu(h, approximate="tanh")}[activation]
    expected = act(x @ ff.w1.weight.T + ff.w1.bias) @ ff.w2.weight.T + ff.w2.bias
    assert ff.w1.weight.shape == (4 * D, D)
    assert_close(ff(x), expected, **tol)


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D, 4 * D, "swish")


def test_swiglu_gates_with_silu(device, dtype, tol):
    ff = SwiGLU(D, 32).to(device, dtype)
    x = torch.randn(2, 3, D, device=device, dtype=dtype)
    gate = x @ ff.w1.weight.T
    expected = (F.silu(gate) * (x @ ff.w3.weight.T)) @ ff.w2.weight.T
    assert ff.w2.weight.shape == (D, 32)
    assert_close(ff(x), expected, **tol)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
def test_residual_connection_order(device, dtype, tol, norm_first):
    block = ResidualConnection(D, norm_first=norm_first).to(device, dtype)
    sublayer = nn.Linear(D, D).to(device, dtype)
    x = torch.randn(2, 3, D, device=device, dtype=dtype)
    norm = block.norm
    expected = x + sublayer(norm(x)) if norm_first else norm(x + sublayer(x))
    assert_close(block(x, sublayer), expected, **tol)


def test_residual_path_carries_gradient_through_a_dead_sublayer():
    block = ResidualConnection(D, norm_first=True)
    x = torch.randn(2, D, requires_grad=True)
    block(x, lambda h: torch.zeros_like(h)).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
