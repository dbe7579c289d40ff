"""Multi-head attention against ``torch.nn.MultiheadAttention`` with copied weights."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tfcourse.kv_cache import LayerCache
from tfcourse.masks import causal_mask
from tfcourse.multihead import MultiHeadAttention, merge_heads, split_heads

D_MODEL, HEADS = 16, 4


def torch_mha(device, dtype, bias=True):
    return nn.MultiheadAttention(D_MODEL, HEADS, bias=bias, batch_first=True).to(device, dtype).eval()


def test_split_heads_takes_contiguous_feature_blocks(device):
    x = torch.arange(2 * 3 * 8, device=device).reshape(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    assert torch.equal(heads[1, 2, 0], x[1, 0, 4:6])
    assert torch.equal(merge_heads(heads), x)


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        split_heads(torch.zeros(1, 2, 10), 4)


@pytest.mark.parametrize("fused", [False, True], ids=["math", "fused"])
@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_matches_torch(device, dtype, tol, fused, bias):
    reference = torch_mha(device, dtype, bias)
    ours = MultiHeadAttention.from_torch(reference, fused=fused).eval()
    x = torch.randn(3, 6, D_MODEL, device=device, dtype=dtype)
    expected, expected_weights = reference(x, x, x, average_attn_weights=False)
    out, weights = ours(x, x, x)
    assert_close(out, expected, **tol)
    if not fused:
        assert_close(weights, expected_weights, **tol)


@pytest.mark.parametrize("fused", [False, True], ids=["math", "fused"])
def test_cross_attention_with_padding_mask_matches_torch(device, dtype, tol, fused):
    reference = torch_mha(device, dtype)
    ours = MultiHeadAttention.from_torch(reference, fused=fused).eval()
    query = torch.randn(2, 4, D_MODEL, device=device, dtype=dtype)
    memory = torch.randn(2, 7, D_MODEL, device=device, dtype=dtype)
    keep = torch.tensor([[True] * 7, [True] * 5 + [False] * 2], device=device)
    expected, _ = reference(query, memory, memory, key_padding_mask=~keep)
    out, _ = ours(query, memory, memory, mask=keep[:, None, None, :])
    assert_close(out, expected, **tol)


@pytest.mark.parametrize("fused", [False, True], ids=["math", "fused"])
def test_causal_attention_matches_torch(device, dtype, tol, fused):
    reference = torch_mha(device, dtype)
    ours = MultiHeadAttention.from_torch(reference, fused=fused).eval()
    x = torch.randn(2, 5, D_MODEL, device=device, dtype=dtype)
    expected, _ = reference(x, x, x, attn_mask=~causal_mask(5, device))
    assert_close(ours(x, x, x, mask=causal_mask(5, device))[0], expected, **tol)
    assert_close(ours(x, x, x, is_causal=True)[0], expected, **tol)


def test_gradients_match_torch(device, dtype, tol):
    reference = torch_mha(device, dtype)
    ours = MultiHeadAttention.from_torch(reference)
    x = torch.randn(2, 5, D_MODEL, device=device, dtype=dtype)
    reference(x, x, x)[0].square().sum().backward()
    ours(x, x, x)[0].square().sum().backward()
    assert_close(ours.q_proj.weight.grad, reference.in_proj_weight.grad[:D_MODEL], **tol)
    assert_close(ours.out_proj.weight.grad, reference.out_proj.weight.grad, **tol)


def test_fused_and_math_paths_agree(device, dtype, tol):
    math_path = MultiHeadAttention(D_MODEL, HEADS).to(device, dtype)
    fused_path = MultiHeadAttention(D_MODEL, HEADS, fused=True).to(device, dtype)
    fused_path.load_state_dict(math_path.state_dict())
    x = torch.randn(2, 5, D_MODEL, device=device, dtype=dtype)
    assert_close(fused_path(x, x, x, is_causal=True)[0], math_path(x, x, x, is_causal=True)[0], **tol)


@pytest.mark.parametrize("fused", [False, True], ids=["math", "fused"])
def test_cached_attention_equals_full_attention(device, dtype, tol, fused):
    mha = MultiHeadAttention(D_MODEL, HEADS, fused=fused).to(device, dtype)
    x = torch.randn(2, 6, D_MODEL, device=device, dtype=dtype)
    full, _ = mha(x, x, x, is_causal=True)
    cache = LayerCache()
    first, _ = mha(x[:, :4], x[:, :4], x[:, :4], is_causal=True, cache=cache)
    steps = [mha(x[:, t : t + 1], x[:, t : t + 1], x[:, t : t + 1], is_causal=True, cache=cache)[0] for t in (4, 5)]
    assert cache.length == 6
    assert_close(torch.cat([first, *steps], dim=1), full, **tol)


def test_from_torch_rejects_unsupported_options():
    with pytest.raises(ValueError, match="kdim"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(D_MODEL, HEADS, kdim=8, vdim=8))
