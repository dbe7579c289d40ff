"""Properties the maths guarantees, whatever the weights."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import tfcourse.np as tnp
from tfcourse.attention import attention_scores, scaled_dot_product_attention, softmax
from tfcourse.embeddings import (
    LearnedPositionalEmbedding,
    TokenEmbedding,
    apply_rotary,
    sinusoidal_positional_encoding,
)
from tfcourse.encoder_decoder import EncoderLayer
from tfcourse.layers import FeedForward, layer_norm
from tfcourse.masks import causal_mask
from tfcourse.model import GPT, GPTConfig
from tfcourse.multihead import MultiHeadAttention


def test_attention_rows_sum_to_one(device, dtype, tol):
    mha = MultiHeadAttention(16, 4).to(device, dtype)
    x = torch.randn(3, 9, 16, device=device, dtype=dtype)
    _, weights = mha(x, x, x, mask=causal_mask(9, device))
    assert_close(weights.sum(-1), torch.ones(3, 4, 9, device=device, dtype=dtype), **tol)
    assert (weights >= 0).all()


def test_changing_future_tokens_leaves_earlier_outputs_unchanged(device):
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=2, d_model=32)).to(device).eval()
    idx = torch.randint(0, 50, (2, 12), device=device)
    changed = idx.clone()
    changed[:, 8:] = torch.randint(0, 50, (2, 4), device=device)
    assert_close(model(changed)[:, :8], model(idx)[:, :8])
    assert not torch.allclose(model(changed)[:, 8:], model(idx)[:, 8:])


@pytest.mark.parametrize("norm_first", [False, True])
def test_layer_without_positions_is_permutation_equivariant(device, dtype, tol, norm_first):
    layer = EncoderLayer(16, 4, 32, norm_first=norm_first).to(device, dtype).eval()
    x = torch.randn(2, 7, 16, device=device, dtype=dtype)
    perm = torch.randperm(7, device=device)
    assert_close(layer(x[:, perm]), layer(x)[:, perm], **tol)


def test_rotary_scores_depend_only_on_relative_position(device, dtype, tol):
    q, k = torch.randn(2, 8, device=device, dtype=dtype), torch.randn(2, 8, device=device, dtype=dtype)
    positions = torch.tensor([3, 7], device=device)
    shifted = positions + 11
    score = attention_scores(apply_rotary(q, positions), apply_rotary(k, positions))
    score_shifted = attention_scores(apply_rotary(q, shifted), apply_rotary(k, shifted))
    assert_close(score, score_shifted, **tol)


def test_rotary_uses_rotate_half_pairs_and_keeps_norms(device, dtype, tol):
    x = torch.randn(5, 8, device=device, dtype=dtype)
    rotated = apply_rotary(x)
    assert_close(rotated.norm(dim=-1), x.norm(dim=-1), **tol)
    assert_close(rotated[0], x[0], **tol)  # position 0: no rotation
    theta = torch.tensor(1.0, dtype=dtype)  # position 1, pair i = 0: angle 1 * base**0
    expected_first = x[1, 0] * torch.cos(theta).to(device) - x[1, 4] * torch.sin(theta).to(device)
    assert_close(rotated[1, 0], expected_first, **tol)


@pytest.mark.parametrize("low_precision", [torch.bfloat16, torch.float16])
def test_rotary_angles_are_exact_in_low_precision(device, low_precision):
    """Positions past 256 are not rounded: the angles are computed in float32, only the output is cast."""
    positions = torch.arange(2040, 2048, device=device)
    x = torch.randn(8, 16, device=device)
    expected = apply_rotary(x, positions).to(low_precision)
    actual = apply_rotary(x.to(low_precision), positions)
    assert actual.dtype == low_precision
    assert_close(actual.float(), expected.float(), atol=0.05, rtol=0.02)


def test_rotary_refuses_positions_of_another_shape():
    x = torch.randn(2, 5, 8)
    for positions in (torch.arange(4), torch.arange(10).reshape(2, 5), torch.arange(5)[None]):
        with pytest.raises(ValueError, match=r"positions must have shape \(5,\)"):
            apply_rotary(x, positions)


def test_sinusoidal_table_even_sin_odd_cos(device, dtype, tol):
    table = sinusoidal_positional_encoding(10, 8, dtype=dtype, device=device)
    pos, i = 3, 1
    angle = torch.tensor(pos / 10000 ** (2 * i / 8), dtype=dtype)
    assert_close(table[pos, 2 * i], torch.sin(angle).to(device), **tol)
    assert_close(table[pos, 2 * i + 1], torch.cos(angle).to(device), **tol)
    assert torch.equal(table[0, 0::2], torch.zeros(4, device=device, dtype=dtype))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positional_encoding(4, 7)


def test_token_embedding_is_scaled_lookup(device):
    embed = TokenEmbedding(20, 16).to(device)
    ids = torch.tensor([[1, 5, 5]], device=device)
    assert_close(embed(ids), embed.embedding.weight[ids] * 4.0)


def test_learned_positions_shift_with_offset(device):
    positions = LearnedPositionalEmbedding(10, 4).to(device)
    x = torch.zeros(1, 3, 4, device=device)
    assert_close(positions(x, offset=2), positions.embedding.weight[2:5][None])


def test_numpy_twins_equal_the_pytorch_versions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8))
    mask = np.tril(np.ones((5, 5), dtype=bool))
    t = torch.from_numpy
    assert np.allclose(tnp.softmax(x, temperature=2.0), softmax(t(x), temperature=2.0).numpy(), atol=1e-12)
    out, weights = tnp.scaled_dot_product_attention(x, x, x, mask)
    out_t, weights_t = scaled_dot_product_attention(t(x), t(x), t(x), t(mask))
    assert np.allclose(out, out_t.numpy(), atol=1e-12) and np.allclose(weights, weights_t.numpy(), atol=1e-12)
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    assert np.allclose(tnp.layer_norm(x, w, b), layer_norm(t(x), t(w), t(b)).numpy(), atol=1e-12)
    table = sinusoidal_positional_encoding(6, 8, dtype=torch.float64).numpy()
    assert np.allclose(tnp.sinusoidal_positional_encoding(6, 8), table, atol=1e-12)


def test_numpy_feed_forward_and_multi_head_equal_the_pytorch_modules():
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ff = FeedForward(8, 32, "gelu").double()
    expected = ff(x).detach().numpy()
    weights = [p.detach().numpy() for p in (ff.w1.weight.T, ff.w1.bias, ff.w2.weight.T, ff.w2.bias)]
    assert np.allclose(tnp.feed_forward(x.numpy(), *weights, activation="gelu"), expected, atol=1e-12)
    mha = MultiHeadAttention(8, 2, bias=False).double()
    projections = [p.weight.T.detach().numpy() for p in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj)]
    mask = causal_mask(5).numpy()
    out, weights_np = tnp.multi_head_attention(x.numpy(), *projections, n_heads=2, mask=mask)
    out_t, weights_t = mha(x, x, x, mask=causal_mask(5))
    assert np.allclose(out, out_t.detach().numpy(), atol=1e-12)
    assert np.allclose(weights_np, weights_t.detach().numpy(), atol=1e-12)
