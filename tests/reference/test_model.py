"""Whole models: GPT against Hugging Face GPT-2, fused vs explicit maths, the KV cache."""

import pytest
import torch
from torch.testing import assert_close

from tfcourse.generation import decoder_only_step, generate, greedy_decode
from tfcourse.model import GPT, GPTConfig, Transformer, count_parameters

transformers = pytest.importorskip("transformers")

# float32 logits of two implementations of the same 2-layer GPT-2 differ by rounding only.
HF_TOLERANCE = dict(atol=1e-5, rtol=1e-4)


def small_config(**overrides) -> GPTConfig:
    sizes = dict(vocab_size=61, block_size=32, n_layers=2, n_heads=4, d_model=32)
    return GPTConfig(**{**sizes, **overrides})


@pytest.fixture
def hf_gpt2(device):
    config = transformers.GPT2Config(
        vocab_size=61, n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=None, eos_token_id=None
    )
    torch.manual_seed(1)
    return transformers.GPT2LMHeadModel(config).to(device).eval()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
def test_gpt_from_hf_gives_the_same_logits(device, hf_gpt2, fused):
    ours = GPT.from_hf(hf_gpt2, fused=fused)
    idx = torch.randint(0, 61, (3, 20), device=device)
    with torch.no_grad():
        assert_close(ours(idx), hf_gpt2(idx).logits, **HF_TOLERANCE)


def test_gpt_from_hf_gives_the_same_greedy_tokens(device, hf_gpt2):
    ours = GPT.from_hf(hf_gpt2)
    prompt = torch.randint(0, 61, (2, 4), device=device)
    expected = hf_gpt2.generate(
        prompt, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(prompt), pad_token_id=0
    )
    assert torch.equal(generate(ours, prompt, 16, temperature=0), expected)
    assert torch.equal(greedy_decode(decoder_only_step(ours), prompt, 16), expected)


def test_fused_and_math_gpt_agree(device, dtype, tol):
    math_gpt = GPT(small_config(fused=False)).to(device, dtype).eval()
    fused_gpt = GPT(small_config(fused=True)).to(device, dtype).eval()
    fused_gpt.load_state_dict(math_gpt.state_dict())
    idx = torch.randint(0, 61, (2, 17), device=device)
    assert_close(fused_gpt(idx), math_gpt(idx), **tol)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "math"])
def test_kv_cache_gives_the_same_logits(device, dtype, tol, fused):
    model = GPT(small_config(fused=fused)).to(device, dtype).eval()
    idx = torch.randint(0, 61, (2, 12), device=device)
    full = model(idx)
    cache = model.new_cache()
    prefill, cache = model(idx[:, :7], cache)
    steps = [model(idx[:, t : t + 1], cache)[0] for t in range(7, 12)]
    assert_close(torch.cat([prefill, *steps], dim=1), full, **tol)


def test_generation_with_and_without_cache_gives_the_same_tokens(device):
    model = GPT(small_config()).to(device).eval()
    prompt = torch.randint(0, 61, (2, 5), device=device)
    outputs = []
    for use_cache in (True, False):
        generator = torch.Generator(device).manual_seed(7)
        outputs.append(generate(model, prompt, 40, top_k=20, generator=generator, use_cache=use_cache))
    assert outputs[0].shape == (2, 45)  # longer than block_size: the window slides
    assert torch.equal(*outputs)


def test_gpt_ties_embeddings_and_counts_parameters():
    model = GPT(small_config())
    assert model.lm_head.weight is model.token_embedding.weight
    d, layers, vocab, block = 32, 2, 61, 32
    per_layer = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    assert count_parameters(model) == vocab * d + block * d + layers * per_layer + 2 * d


def test_gpt_rejects_sequences_longer_than_block_size():
    with pytest.raises(ValueError, match="max_len"):
        GPT(small_config())(torch.zeros(1, 33, dtype=torch.long))


def test_transformer_shapes_and_causal_decoder(device):
    model = Transformer(11, 13, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0).to(device).eval()
    src = torch.randint(0, 11, (2, 7), device=device)
    tgt = torch.randint(0, 13, (2, 5), device=device)
    logits = model(src, tgt)
    assert logits.shape == (2, 5, 13)
    changed = tgt.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 13
    assert_close(model(src, changed)[:, :3], logits[:, :3])


def test_transformer_source_padding_is_ignored(device):
    model = Transformer(11, 13, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0).to(device).eval()
    src = torch.randint(1, 11, (1, 5), device=device)
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long, device=device)], dim=1)
    tgt = torch.randint(0, 13, (1, 4), device=device)
    keep = (padded != 0)[:, None, None, :]
    assert_close(model(padded, tgt, src_mask=keep), model(src, tgt), atol=1e-5, rtol=1e-4)
