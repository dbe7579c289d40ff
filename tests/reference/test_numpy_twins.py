"""The NumPy twins compute what PyTorch's own operators compute, at float64 and float32."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tfcourse.np as tnp


def twin(function, *tensors: torch.Tensor, **kwargs) -> torch.Tensor:
    """Run a NumPy twin on the tensors' arrays and hand its result back as a tensor."""
    return torch.from_numpy(function(*(t.detach().numpy() for t in tensors), **kwargs))


def random_mask(*shape: int) -> torch.Tensor:
    """A random boolean mask whose second query row is fully masked."""
    mask = torch.rand(*shape) > 0.4
    mask[..., 1, :] = False
    return mask


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_softmax_matches_torch(dtype, tol, axis, temperature):
    x = torch.randn(3, 4, 5, dtype=dtype) * 4
    expected = torch.softmax(x / temperature, dim=axis)
    torch.testing.assert_close(twin(tnp.softmax, x, axis=axis, temperature=temperature), expected, **tol)


def test_softmax_of_huge_logits_is_finite_and_sums_to_one():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]])
    probs = tnp.softmax(logits)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


def test_softmax_of_fully_masked_row_is_zero():
    logits = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], dtype=np.float32)
    probs = tnp.softmax(logits)
    assert probs.dtype == np.float32
    np.testing.assert_array_equal(probs, [[0.0, 0.0], [1.0, 0.0]])


def test_softmax_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        tnp.softmax(np.zeros(3), temperature=0.0)


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
def test_scaled_dot_product_attention_matches_torch(dtype, tol, masked):
    q, k = torch.randn(2, 3, 6, 8, dtype=dtype), torch.randn(2, 3, 7, 8, dtype=dtype)
    v = torch.randn(2, 3, 7, 5, dtype=dtype)
    mask = random_mask(2, 1, 6, 7) if masked else None
    np_mask = None if mask is None else mask.numpy()
    output, weights = tnp.scaled_dot_product_attention(q.numpy(), k.numpy(), v.numpy(), np_mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # Attending over the identity matrix returns the attention weights themselves.
    identity = torch.eye(7, dtype=dtype).expand(2, 3, 7, 7)
    expected_weights = F.scaled_dot_product_attention(q, k, identity, attn_mask=mask)
    torch.testing.assert_close(torch.from_numpy(output), expected, **tol)
    torch.testing.assert_close(torch.from_numpy(weights), expected_weights, **tol)


def test_attention_weights_exclude_masked_keys_and_sum_to_one():
    q, k, v = np.random.default_rng(0).normal(size=(3, 1, 5, 4))
    mask = random_mask(5, 5).numpy()
    output, weights = tnp.scaled_dot_product_attention(q, k, v, mask)
    assert np.all(weights[..., ~mask] == 0)
    np.testing.assert_allclose(weights.sum(axis=-1), mask.any(axis=-1).astype(float)[None], atol=1e-12)
    np.testing.assert_array_equal(output[:, 1], 0.0)


def test_layer_norm_matches_torch(dtype, tol):
    x = torch.randn(2, 5, 16, dtype=dtype) * 3 + 1
    weight, bias = torch.randn(16, dtype=dtype), torch.randn(16, dtype=dtype)
    expected = F.layer_norm(x, (16,), weight, bias, eps=1e-5)
    torch.testing.assert_close(twin(tnp.layer_norm, x, weight, bias), expected, **tol)


def test_gelu_is_exact_erf_form():
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    torch.testing.assert_close(twin(tnp.gelu, x), F.gelu(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_matches_torch_with_transposed_linear_weights(dtype, tol, activation):
    act = nn.ReLU() if activation == "relu" else nn.GELU()
    ffn = nn.Sequential(nn.Linear(8, 32), act, nn.Linear(32, 8)).to(dtype)
    x = torch.randn(2, 5, 8, dtype=dtype)
    first, second = ffn[0], ffn[2]
    weights = (first.weight.T, first.bias, second.weight.T, second.bias)
    result = twin(tnp.feed_forward, x, *weights, activation=activation)
    torch.testing.assert_close(result, ffn(x).detach(), **tol)


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        tnp.feed_forward(np.zeros((1, 2)), np.zeros((2, 3)), np.zeros(3), np.zeros((3, 2)), np.zeros(2), "tanh")


def test_sinusoidal_positional_encoding_hand_computed_values():
    table = tnp.sinusoidal_positional_encoding(seq_len=5, d_model=4)
    assert table.shape == (5, 4)
    np.testing.assert_array_equal(table[0], [0.0, 1.0, 0.0, 1.0])
    # Column pair i = 1 turns at frequency 1 / 10000^(2/4) = 1 / 100.
    np.testing.assert_allclose(table[1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], atol=1e-15)
    np.testing.assert_allclose(table[3], [math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)], atol=1e-15)


def test_sinusoidal_positional_encoding_even_columns_sin_odd_columns_cos():
    d_model = 16
    table = tnp.sinusoidal_positional_encoding(seq_len=50, d_model=d_model)
    angles = np.arange(50)[:, None] / 10000 ** (np.arange(0, d_model, 2) / d_model)
    np.testing.assert_allclose(table[:, 0::2], np.sin(angles), atol=1e-12)
    np.testing.assert_allclose(table[:, 1::2], np.cos(angles), atol=1e-12)
    assert tnp.sinusoidal_positional_encoding(3, 4, dtype=np.float32).dtype == np.float32


def test_sinusoidal_positional_encoding_rejects_odd_d_model():
    with pytest.raises(ValueError, match="even"):
        tnp.sinusoidal_positional_encoding(seq_len=4, d_model=5)


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "causal"])
def test_multi_head_attention_matches_torch(dtype, tol, masked):
    d_model, n_heads, seq = 12, 3, 6
    torch_mha = nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True, dtype=dtype)
    x = torch.randn(2, seq, d_model, dtype=dtype)
    mask = torch.ones(seq, seq, dtype=torch.bool).tril() if masked else None
    # nn.MultiheadAttention stacks W_q^T, W_k^T, W_v^T as the rows of in_proj_weight.
    w_q, w_k, w_v = (w.T for w in torch_mha.in_proj_weight.detach().chunk(3))
    w_o = torch_mha.out_proj.weight.detach().T
    output, weights = tnp.multi_head_attention(
        *(t.numpy() for t in (x, w_q, w_k, w_v, w_o)), n_heads, None if mask is None else mask.numpy()
    )
    # nn.MultiheadAttention's boolean mask marks the positions that may NOT attend.
    expected, expected_weights = torch_mha(
        x, x, x, attn_mask=None if mask is None else ~mask, average_attn_weights=False
    )
    torch.testing.assert_close(torch.from_numpy(output), expected.detach(), **tol)
    torch.testing.assert_close(torch.from_numpy(weights), expected_weights.detach(), **tol)


def test_split_and_merge_heads_are_inverse():
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    heads = tnp.split_heads(x, n_heads=4)
    assert heads.shape == (2, 4, 3, 2)
    np.testing.assert_array_equal(heads[:, 1], x[:, :, 2:4])
    np.testing.assert_array_equal(tnp.merge_heads(heads), x)
    with pytest.raises(ValueError, match="divisible"):
        tnp.split_heads(x, n_heads=3)
