"""Attention maths against PyTorch's own kernels."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tfcourse.attention import attention_entropy, attention_scores, scaled_dot_product_attention, softmax
from tfcourse.masks import causal_mask, padding_mask


def qkv(device, dtype, batch=2, heads=3, q_len=5, k_len=7, d_k=8, d_v=6):
    make = lambda *shape: torch.randn(*shape, device=device, dtype=dtype)
    return make(batch, heads, q_len, d_k), make(batch, heads, k_len, d_k), make(batch, heads, k_len, d_v)


@pytest.mark.parametrize("dim", [-1, 0, 1])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_softmax_matches_torch(device, dtype, tol, dim, temperature):
    x = torch.randn(4, 5, 6, device=device, dtype=dtype) * 10
    assert_close(softmax(x, dim=dim, temperature=temperature), torch.softmax(x / temperature, dim=dim), **tol)


def test_softmax_is_stable_for_huge_logits(device, dtype):
    x = torch.tensor([[1e4, 1e4 - 1.0, -1e4]], device=device, dtype=dtype)
    out = softmax(x)
    assert torch.isfinite(out).all()
    assert_close(out, torch.softmax(x, dim=-1))


def test_softmax_of_fully_masked_row_is_zero(device, dtype):
    x = torch.full((2, 4), float("-inf"), device=device, dtype=dtype)
    x[0, 1] = 0.0
    out = softmax(x)
    assert_close(out[0], torch.tensor([0.0, 1.0, 0.0, 0.0], device=device, dtype=dtype))
    assert torch.equal(out[1], torch.zeros(4, device=device, dtype=dtype))


def test_softmax_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        softmax(torch.zeros(3), temperature=0.0)


def test_attention_scores_is_scaled_dot_product(device, dtype, tol):
    q, k, _ = qkv(device, dtype)
    assert_close(attention_scores(q, k), torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(8), **tol)


def test_sdpa_without_mask_matches_torch(device, dtype, tol):
    q, k, v = qkv(device, dtype)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert_close(out, F.scaled_dot_product_attention(q, k, v), **tol)
    assert_close(weights.sum(-1), torch.ones(2, 3, 5, device=device, dtype=dtype), **tol)


@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 1, 5, 7), (2, 3, 5, 7), (1, 1, 1, 7)])
def test_sdpa_with_boolean_mask_matches_torch(device, dtype, tol, mask_shape):
    q, k, v = qkv(device, dtype)
    mask = torch.rand(mask_shape, device=device) > 0.4
    mask[..., 0] = True  # every query keeps at least one key
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **tol)
    assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_sdpa_fully_masked_row_gives_zeros_not_nan(device, dtype, tol):
    q, k, v = qkv(device, dtype)
    mask = torch.ones(5, 7, dtype=torch.bool, device=device)
    mask[2] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert not torch.isnan(out).any()
    assert torch.equal(out[..., 2, :], torch.zeros_like(out[..., 2, :]))
    assert torch.equal(weights[..., 2, :], torch.zeros_like(weights[..., 2, :]))
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **tol)


def test_sdpa_causal_matches_torch_is_causal(device, dtype, tol):
    q, k, v = qkv(device, dtype, q_len=6, k_len=6)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(6, device))
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **tol)


def test_sdpa_gradients_match_torch(device, dtype, tol):
    ours = [t.requires_grad_() for t in qkv(device, dtype)]
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    grad = torch.randn(2, 3, 5, 6, device=device, dtype=dtype)
    scaled_dot_product_attention(*ours)[0].backward(grad)
    F.scaled_dot_product_attention(*theirs).backward(grad)
    for a, b in zip(ours, theirs):
        assert_close(a.grad, b.grad, **tol)


def test_attention_entropy_of_uniform_and_one_hot(device, dtype):
    uniform = torch.full((2, 4), 0.25, device=device, dtype=dtype)
    one_hot = torch.eye(4, device=device, dtype=dtype)
    assert_close(attention_entropy(uniform), torch.full((2,), math.log(4), device=device, dtype=dtype))
    assert torch.equal(attention_entropy(one_hot), torch.zeros(4, device=device, dtype=dtype))


def test_attention_entropy_matches_distribution_entropy(device, dtype, tol):
    weights = torch.softmax(torch.randn(3, 5, 9, device=device, dtype=dtype), dim=-1)
    expected = torch.distributions.Categorical(probs=weights).entropy()
    assert_close(attention_entropy(weights), expected, **tol)


def test_causal_mask_with_cached_prefix(device):
    mask = causal_mask(2, device, past_len=3)
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool, device=device)
    assert torch.equal(mask, expected)
    assert torch.equal(causal_mask(4, device), torch.ones(4, 4, dtype=torch.bool, device=device).tril())


def test_padding_mask_shape_and_values(device):
    tokens = torch.tensor([[5, 6, 0, 0], [7, 0, 8, 9]], device=device)
    mask = padding_mask(tokens, pad_id=0)
    assert mask.shape == (2, 1, 1, 4) and mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [[True, True, False, False], [True, False, True, True]]
