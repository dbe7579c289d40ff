"""Copying Hugging Face GPT-2 weights into :class:`tfcourse.model.GPT`.

GPT-2 stores its projections as ``Conv1D`` modules whose weight is ``(in, out)``, the
transpose of ``nn.Linear``'s ``(out, in)``; the query, key and value projections are one
``c_attn`` matrix of shape ``(d, 3d)``. Nothing here downloads: pass a model you built or
one already in your cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from tfcourse.model import GPTConfig

HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def gpt_config_from_hf(hf_config) -> "GPTConfig":
    """The :class:`~tfcourse.model.GPTConfig` with the same sizes as a ``GPT2Config``."""
    from tfcourse.model import GPTConfig

    if hf_config.activation_function not in HF_ACTIVATIONS:
        raise ValueError(f"unsupported GPT-2 activation {hf_config.activation_function!r}")
    if getattr(hf_config, "scale_attn_by_inverse_layer_idx", False):
        raise ValueError("scale_attn_by_inverse_layer_idx=True is not supported")
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        block_size=hf_config.n_positions,
        n_layers=hf_config.n_layer,
        n_heads=hf_config.n_head,
        d_model=hf_config.n_embd,
        d_ff=hf_config.n_inner or 4 * hf_config.n_embd,
        dropout=0.0,
        activation=HF_ACTIVATIONS[hf_config.activation_function],
        eps=hf_config.layer_norm_epsilon,
    )


def _copy_conv1d(linear: nn.Linear, weight: Tensor, bias: Tensor) -> None:
    """Load a ``Conv1D`` slice (``weight (in, out)``) into an ``nn.Linear``."""
    linear.weight.copy_(weight.t())
    linear.bias.copy_(bias)


def _copy_block(block: nn.Module, hf_block: nn.Module) -> None:
    attn = block.self_attn
    q_w, k_w, v_w = hf_block.attn.c_attn.weight.chunk(3, dim=1)
    q_b, k_b, v_b = hf_block.attn.c_attn.bias.chunk(3)
    for linear, weight, bias in ((attn.q_proj, q_w, q_b), (attn.k_proj, k_w, k_b), (attn.v_proj, v_w, v_b)):
        _copy_conv1d(linear, weight, bias)
    _copy_conv1d(attn.out_proj, hf_block.attn.c_proj.weight, hf_block.attn.c_proj.bias)
    _copy_conv1d(block.ff.w1, hf_block.mlp.c_fc.weight, hf_block.mlp.c_fc.bias)
    _copy_conv1d(block.ff.w2, hf_block.mlp.c_proj.weight, hf_block.mlp.c_proj.bias)
    block.self_attn_residual.norm.load_state_dict(hf_block.ln_1.state_dict())
    block.ff_residual.norm.load_state_dict(hf_block.ln_2.state_dict())


@torch.no_grad()
def gpt_from_hf(gpt_class: type, hf_model: nn.Module, fused: bool = True) -> nn.Module:
    """Build ``gpt_class`` with ``hf_model``'s sizes and copy every weight across."""
    config = gpt_config_from_hf(hf_model.config)
    config.fused = fused
    gpt = gpt_class(config)
    body = getattr(hf_model, "transformer", hf_model)
    gpt.to(device=body.wte.weight.device, dtype=body.wte.weight.dtype)
    gpt.token_embedding.weight.copy_(body.wte.weight)
    gpt.position_embedding.embedding.weight.copy_(body.wpe.weight)
    for block, hf_block in zip(gpt.blocks, body.h):
        _copy_block(block, hf_block)
    gpt.norm.load_state_dict(body.ln_f.state_dict())
    return gpt.eval()
