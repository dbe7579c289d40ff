"""The LLaMA-style decoder against a twin made of PyTorch's own functions, the KV cache and its size."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tfcourse.embeddings import apply_rotary
from tfcourse.generation import generate
from tfcourse.llama import (
    GroupedQueryAttention,
    Llama,
    LlamaConfig,
    apply_rope,
    kv_cache_bytes,
    repeat_kv,
    rope_angles,
)
from tfcourse.masks import padding_mask


def small_config(**overrides) -> LlamaConfig:
    sizes = {"vocab_size": 61, "max_seq_len": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_model": 32}
    return LlamaConfig(**(sizes | overrides))


def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as a complex product: ``x_i + i x_{i+d/2}`` times ``exp(i * position * base^(-2i/d))``."""
    half = x.size(-1) // 2
    z = torch.complex(x[..., :half], x[..., half:])  # (B, h, T, d/2)
    freqs = base ** (-2 * torch.arange(half, dtype=x.dtype, device=x.device) / x.size(-1))
    rotated = z * torch.polar(torch.ones_like(freqs), positions[:, None, :, None].to(x.dtype) * freqs)
    return torch.cat([rotated.real, rotated.imag], dim=-1)


def twin_attention(weights: dict, prefix: str, x: torch.Tensor, positions: torch.Tensor, n_heads: int,
                   n_kv_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Grouped-query attention from F.linear, a complex RoPE and F.scaled_dot_product_attention(enable_gqa=True)."""
    batch, seq_len, d_model = x.shape
    d_head = d_model // n_heads
    def heads(name: str, n: int) -> torch.Tensor:
        return F.linear(x, weights[prefix + name]).view(batch, seq_len, n, d_head).transpose(1, 2)
    q = complex_rope(heads("q_proj.weight", n_heads), positions)
    k = complex_rope(heads("k_proj.weight", n_kv_heads), positions)
    v = heads("v_proj.weight", n_kv_heads)
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=x.device).tril()
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal if mask is None else causal & mask,
                                         enable_gqa=True)
    return F.linear(out.transpose(1, 2).reshape(batch, seq_len, d_model), weights[prefix + "o_proj.weight"])


def twin_llama(weights: dict, config: LlamaConfig, idx: torch.Tensor) -> torch.Tensor:
    """The LLaMA forward pass written with torch.nn.functional only, from a state_dict."""
    c = config
    x = F.embedding(idx, weights["token_embedding.weight"])
    positions = torch.arange(idx.size(1), device=idx.device).expand_as(idx)
    for i in range(c.n_layers):
        p = f"blocks.{i}."
        h = F.rms_norm(x, (c.d_model,), weights[p + "attention_norm.weight"], c.eps)
        x = x + twin_attention(weights, p + "attention.", h, positions, c.n_heads, c.n_kv_heads or c.n_heads)
        h = F.rms_norm(x, (c.d_model,), weights[p + "ffn_norm.weight"], c.eps)
        gate = F.silu(F.linear(h, weights[p + "feed_forward.w1.weight"]))
        x = x + F.linear(gate * F.linear(h, weights[p + "feed_forward.w3.weight"]), weights[p + "feed_forward.w2.weight"])
    x = F.rms_norm(x, (c.d_model,), weights["norm.weight"], c.eps)
    return F.linear(x, weights["lm_head.weight"])


def random_model(config: LlamaConfig, device, dtype) -> Llama:
    """A model whose norms' weights are not all ones, so that a skipped weight shows."""
    model = Llama(config).to(device, dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def test_the_angle_table_is_apply_rotary_at_positions_0_to_n(device, dtype, tol):
    x = torch.randn(2, 3, 7, 8, device=device, dtype=dtype)
    cos, sin = rope_angles(16, 8, dtype=dtype, device=device)
    positions = torch.arange(7, device=device).expand(2, 7)
    assert_close(apply_rope(x, cos, sin, positions), apply_rotary(x), **tol)


def test_each_sequence_is_rotated_at_its_own_positions(device, dtype, tol):
    x = torch.randn(3, 2, 5, 8, device=device, dtype=dtype)
    positions = torch.tensor([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11], [0, 0, 0, 1, 2]], device=device)
    cos, sin = rope_angles(12, 8, dtype=dtype, device=device)
    assert_close(apply_rope(x, cos, sin, positions), complex_rope(x, positions), **tol)


def test_rotated_scores_depend_only_on_the_distance():
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)
    cos, sin = rope_angles(64, 16, dtype=torch.float64)
    def score(m: int, n: int) -> torch.Tensor:
        at = lambda t, p: apply_rope(t, cos, sin, torch.tensor([[p]]))
        return (at(q, m) * at(k, n)).sum()
    assert_close(score(10, 3), score(40, 33))
    assert not torch.isclose(score(10, 3), score(10, 4))


def test_a_model_moved_to_float64_has_float64_angles():
    attention = GroupedQueryAttention(16, 2, max_seq_len=3000).double()
    expected = rope_angles(3000, 8, dtype=torch.float64)
    assert attention.rope.cos.dtype == torch.float64
    assert_close(attention.rope.cos, expected[0], atol=1e-15, rtol=0)
    assert_close(attention.rope.sin, expected[1], atol=1e-15, rtol=0)


@pytest.mark.parametrize("n_rep", [1, 3])
def test_repeat_kv_is_repeat_interleave(device, n_rep):
    x = torch.randn(2, 4, 5, 6, device=device)
    assert torch.equal(repeat_kv(x, n_rep), x.repeat_interleave(n_rep, dim=1))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_grouped_query_attention_matches_pytorch(device, dtype, tol, n_kv_heads, fused):
    attention = GroupedQueryAttention(32, 4, n_kv_heads, max_seq_len=16, fused=fused).to(device, dtype)
    x = torch.randn(2, 9, 32, device=device, dtype=dtype)
    positions = torch.randint(0, 16, (2, 9), device=device)
    expected = twin_attention(attention.state_dict(), "", x, positions, 4, n_kv_heads)
    assert_close(attention(x, positions), expected, **tol)


def test_shared_heads_have_fewer_key_value_weights():
    full, multi_query = GroupedQueryAttention(64, 8), GroupedQueryAttention(64, 8, 1)
    assert full.k_proj.weight.shape == (64, 64) and multi_query.k_proj.weight.shape == (8, 64)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
@pytest.mark.parametrize("n_kv_heads", [4, 1], ids=["MHA", "MQA"])
def test_llama_matches_its_twin_built_from_pytorch_functions(device, n_kv_heads, fused):
    config = small_config(n_kv_heads=n_kv_heads, fused=fused)
    model = random_model(config, device, torch.float64)
    idx = torch.randint(0, 61, (3, 20), device=device)
    with torch.no_grad():
        expected = twin_llama(model.state_dict(), config, idx)
        assert_close(model(idx), expected, atol=1e-12, rtol=1e-10)


def test_llama_has_no_biases_and_an_untied_head():
    model = Llama(small_config())
    assert all(not name.endswith("bias") for name, _ in model.named_parameters())
    assert model.lm_head.weight.data_ptr() != model.token_embedding.weight.data_ptr()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
def test_the_kv_cache_gives_the_same_logits(device, dtype, tol, fused):
    model = random_model(small_config(fused=fused), device, dtype)
    idx = torch.randint(0, 61, (2, 12), device=device)
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache()
        steps = [model(idx[:, :5], cache)[0]] + [model(idx[:, t:t + 1], cache)[0] for t in range(5, 12)]
    assert_close(torch.cat(steps, dim=1), full, **tol)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
def test_a_left_padded_prompt_gives_the_unpadded_logits(fused):
    """Per-sequence positions and a padding mask make padding invisible."""
    model = random_model(small_config(fused=fused), "cpu", torch.float64)
    short, long = torch.randint(1, 61, (1, 5)), torch.randint(1, 61, (1, 8))
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1), long])  # (2, 8)
    positions = torch.stack([torch.tensor([0, 0, 0, 0, 1, 2, 3, 4]), torch.arange(8)])
    with torch.no_grad():
        padded = model(batch, positions=positions, mask=padding_mask(batch, 0))  # (B, 1, 1, 8)
        assert_close(padded[0, 3:], model(short)[0], atol=1e-12, rtol=1e-10)
        assert_close(padded[1], model(long)[0], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n_kv_heads", [8, 4, 2, 1])
def test_the_cache_is_n_heads_over_n_kv_heads_times_smaller(n_kv_heads):
    config = small_config(n_heads=8, n_kv_heads=n_kv_heads, d_model=64)
    model, idx = Llama(config).eval(), torch.randint(0, 61, (2, 20))
    with torch.no_grad():
        _, cache = model(idx, model.new_cache())
    full = 2 * config.n_layers * 2 * 20 * config.d_model * 4  # keys and values, batch 2, 20 positions, float32
    assert kv_cache_bytes(cache) * config.n_heads // n_kv_heads == full


def test_generate_runs_a_llama(device):
    model = Llama(small_config()).to(device).eval()
    prompt = torch.randint(0, 61, (2, 3), device=device)
    with torch.no_grad():
        cached = generate(model, prompt, 10, temperature=0)
        uncached = generate(model, prompt, 10, temperature=0, use_cache=False)
    assert cached.shape == (2, 13) and torch.equal(cached, uncached)


def test_the_default_width_is_two_thirds_of_four_d_model_rounded_to_8():
    assert small_config(d_model=96).hidden_size == 256 == 8 * math.ceil(8 * 96 / 3 / 8)
    assert small_config(d_ff=100).hidden_size == 100
