"""Encoder and decoder layers against ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tfcourse.encoder_decoder import Decoder, DecoderLayer, Encoder, EncoderLayer
from tfcourse.masks import causal_mask

D_MODEL, HEADS, D_FF = 16, 4, 32
LN = pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
PATH = pytest.mark.parametrize("fused", [False, True], ids=["math", "fused"])


def randomise_norms(module: nn.Module) -> None:
    for norm in (m for m in module.modules() if isinstance(m, nn.LayerNorm)):
        nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)


def torch_layer(kind, device, dtype, norm_first, activation="relu"):
    layer = kind(D_MODEL, HEADS, D_FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first)
    randomise_norms(layer)
    return layer.to(device, dtype).eval()


@LN
@PATH
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(device, dtype, tol, norm_first, fused, activation):
    reference = torch_layer(nn.TransformerEncoderLayer, device, dtype, norm_first, activation)
    ours = EncoderLayer.from_torch(reference, fused=fused).eval()
    x = torch.randn(2, 6, D_MODEL, device=device, dtype=dtype)
    keep = torch.ones(2, 6, dtype=torch.bool, device=device)
    keep[1, 4:] = False
    assert_close(ours(x), reference(x), **tol)
    expected = reference(x, src_key_padding_mask=~keep)
    assert_close(ours(x, keep[:, None, None, :])[0, :], expected[0], **tol)
    assert_close(ours(x, keep[:, None, None, :])[1, :4], expected[1, :4], **tol)


@LN
@PATH
def test_decoder_layer_matches_torch(device, dtype, tol, norm_first, fused):
    reference = torch_layer(nn.TransformerDecoderLayer, device, dtype, norm_first)
    ours = DecoderLayer.from_torch(reference, fused=fused).eval()
    x = torch.randn(2, 5, D_MODEL, device=device, dtype=dtype)
    memory = torch.randn(2, 7, D_MODEL, device=device, dtype=dtype)
    memory_keep = torch.ones(2, 7, dtype=torch.bool, device=device)
    memory_keep[0, 5:] = False
    expected = reference(x, memory, tgt_mask=~causal_mask(5, device), memory_key_padding_mask=~memory_keep)
    out = ours(x, memory, tgt_mask=causal_mask(5, device), memory_mask=memory_keep[:, None, None, :])
    assert_close(out, expected, **tol)


@LN
def test_decoder_layer_gradients_match_torch(device, dtype, tol, norm_first):
    reference = torch_layer(nn.TransformerDecoderLayer, device, dtype, norm_first)
    ours = DecoderLayer.from_torch(reference)
    x = torch.randn(2, 5, D_MODEL, device=device, dtype=dtype)
    memory = torch.randn(2, 7, D_MODEL, device=device, dtype=dtype)
    reference(x, memory, tgt_mask=~causal_mask(5, device)).sum().backward()
    ours(x, memory, tgt_mask=causal_mask(5, device)).sum().backward()
    assert_close(ours.ff.w1.weight.grad, reference.linear1.weight.grad, **tol)
    assert_close(ours.cross_attn.out_proj.weight.grad, reference.multihead_attn.out_proj.weight.grad, **tol)


@LN
def test_stacks_match_torch_stacks(device, dtype, tol, norm_first):
    enc_layer = torch_layer(nn.TransformerEncoderLayer, device, dtype, norm_first)
    dec_layer = torch_layer(nn.TransformerDecoderLayer, device, dtype, norm_first)
    final_norm = lambda: nn.LayerNorm(D_MODEL).to(device, dtype) if norm_first else None
    torch_encoder = nn.TransformerEncoder(enc_layer, 2, norm=final_norm(), enable_nested_tensor=False).eval()
    torch_decoder = nn.TransformerDecoder(dec_layer, 2, norm=final_norm()).eval()
    encoder = Encoder(2, D_MODEL, HEADS, D_FF, norm_first=norm_first).to(device, dtype).eval()
    decoder = Decoder(2, D_MODEL, HEADS, D_FF, norm_first=norm_first).to(device, dtype).eval()
    for ours, theirs in ((encoder, torch_encoder), (decoder, torch_decoder)):
        for layer, torch_layer_ in zip(ours.layers, theirs.layers):
            layer.load_state_dict(type(layer).from_torch(torch_layer_).state_dict())
        if norm_first:
            ours.norm.load_state_dict(theirs.norm.state_dict())
    src = torch.randn(2, 6, D_MODEL, device=device, dtype=dtype)
    tgt = torch.randn(2, 4, D_MODEL, device=device, dtype=dtype)
    memory = encoder(src)
    assert_close(memory, torch_encoder(src), **tol)
    expected = torch_decoder(tgt, memory, tgt_mask=~causal_mask(4, device))
    assert_close(decoder(tgt, memory, causal_mask(4, device)), expected, **tol)


def test_from_torch_rejects_custom_activation():
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, activation=torch.tanh, batch_first=True)
    with pytest.raises(ValueError, match="ReLU"):
        EncoderLayer.from_torch(layer)
