"""Complete models: the encoder-decoder Transformer and a decoder-only GPT.

Both are built from the layers of :mod:`tfcourse.encoder_decoder`. ``fused=True`` runs
attention through ``F.scaled_dot_product_attention``; ``fused=False`` through the
explicit maths of :mod:`tfcourse.attention`. The two give the same numbers.
:meth:`GPT.from_hf` copies the weights of a Hugging Face GPT-2 into a :class:`GPT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from tfcourse.embeddings import LearnedPositionalEmbedding, TokenEmbedding, sinusoidal_positional_encoding
from tfcourse.encoder_decoder import Decoder, Encoder, EncoderLayer
from tfcourse.kv_cache import KVCache, LayerCache
from tfcourse.layers import LayerNorm
from tfcourse.masks import causal_mask

# Hugging Face's names of GPT-2's activations -> those of :class:`~tfcourse.layers.FeedForward`.
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters; tied (shared) tensors count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Transformer(nn.Module):
    """The encoder-decoder Transformer of "Attention Is All You Need".

    ``forward(src (B, Ls), tgt (B, Lt)) -> logits (B, Lt, tgt_vocab)``. Token embeddings are
    scaled by sqrt(d_model) and added to the sinusoidal table. The decoder is always
    causal; ``tgt_mask`` (e.g. target padding) is combined with the causal mask and
    ``src_mask`` (``(B, 1, 1, Ls)``, e.g. from :func:`~tfcourse.masks.padding_mask`) hides
    source padding from the encoder and from the cross-attention.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 512,
        n_heads: int = 8,
        n_layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
        max_len: int = 1024,
        fused: bool = False,
    ):
        super().__init__()
        self.src_embed = TokenEmbedding(src_vocab, d_model)
        self.tgt_embed = TokenEmbedding(tgt_vocab, d_model)
        self.register_buffer("positions", sinusoidal_positional_encoding(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        stack = dict(d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=dropout, norm_first=norm_first, fused=fused)
        self.encoder = Encoder(n_layers, **stack)
        self.decoder = Decoder(n_layers, **stack)
        self.lm_head = nn.Linear(d_model, tgt_vocab)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _embed(self, embed: TokenEmbedding, ids: Tensor) -> Tensor:
        return self.dropout(embed(ids) + self.positions[: ids.size(1)])  # (B, L, d_model)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """Source ids ``(B, Ls)`` -> memory ``(B, Ls, d_model)``."""
        return self.encoder(self._embed(self.src_embed, src), src_mask)

    def decode(
        self, tgt: Tensor, memory: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None
    ) -> Tensor:
        """Target ids ``(B, Lt)`` and memory -> next-token logits ``(B, Lt, tgt_vocab)``."""
        causal = causal_mask(tgt.size(1), tgt.device)  # (Lt, Lt)
        mask = causal if tgt_mask is None else causal & tgt_mask
        return self.lm_head(self.decoder(self._embed(self.tgt_embed, tgt), memory, mask, src_mask))

    def forward(
        self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None
    ) -> Tensor:
        return self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)


@dataclass
class GPTConfig:
    """Sizes and options of a :class:`GPT`. ``d_ff=None`` means ``4 * d_model``."""

    vocab_size: int = 256
    block_size: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None
    dropout: float = 0.0
    activation: str = "gelu"
    eps: float = 1e-5
    fused: bool = True

    @classmethod
    def from_hf(cls, hf_config) -> GPTConfig:
        """The sizes of a Hugging Face ``GPT2Config``."""
        if hf_config.activation_function not in HF_ACTIVATIONS:
            raise ValueError(f"unsupported GPT-2 activation {hf_config.activation_function!r}")
        if getattr(hf_config, "scale_attn_by_inverse_layer_idx", False):
            raise ValueError("scale_attn_by_inverse_layer_idx=True is not supported")
        return cls(
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


class Block(EncoderLayer):
    """One GPT block: a pre-LN :class:`~tfcourse.encoder_decoder.EncoderLayer` whose self-attention is causal.

        x <- x + dropout(Attention(LN(x)))    position t attends to positions 0..t only
        x <- x + dropout(FFN(LN(x)))

    ``forward(x (B, T, d), cache) -> (B, T, d)``. With a :class:`~tfcourse.kv_cache.LayerCache`,
    ``x`` holds only the new positions and attention also reads the cached keys and values.
    The members are those of ``EncoderLayer`` (``self_attn``, ``ff``, ``self_attn_residual.norm``,
    ``ff_residual.norm``), so a GPT's ``state_dict`` names them alike.
    """

    def __init__(self, config: GPTConfig):
        c = config
        super().__init__(c.d_model, c.n_heads, c.d_ff or 4 * c.d_model, c.dropout, norm_first=True,
                         activation=c.activation, eps=c.eps, fused=c.fused)

    def forward(self, x: Tensor, cache: LayerCache | None = None) -> Tensor:
        x = self.self_attn_residual(x, partial(self.causal_self_attention, cache=cache))  # (B, T, d)
        return self.ff_residual(x, self.ff)  # (B, T, d)

    def causal_self_attention(self, x: Tensor, cache: LayerCache | None = None) -> Tensor:
        """``(B, T, d) -> (B, T, d)``: each position attends to itself and every earlier (or cached) one."""
        return self.self_attn(x, x, x, is_causal=True, cache=cache)[0]


class GPT(nn.Module):
    """Decoder-only Transformer (GPT-2 layout): pre-LN blocks, learned positions, tied embeddings.

    ``forward(idx (B, T)) -> logits (B, T, vocab)``; with a :class:`~tfcourse.kv_cache.KVCache`,
    ``forward(idx, cache) -> (logits, cache)`` where ``idx`` holds only the new tokens.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = LearnedPositionalEmbedding(c.block_size, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = LayerNorm(c.d_model, c.eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2 initialisation; projections into the residual stream get 1/sqrt(2 n_layers) less."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, Block):
            for proj in (module.self_attn.out_proj, module.ff.w2):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def new_cache(self) -> KVCache:
        """An empty cache to pass to :meth:`forward`."""
        return KVCache(self.config.n_layers)

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor | tuple[Tensor, KVCache]:
        offset = 0 if cache is None else cache.length
        x = self.dropout(self.position_embedding(self.token_embedding(idx), offset))  # (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])  # (B, T, d)
        logits = self.lm_head(self.norm(x))  # (B, T, vocab)
        return logits if cache is None else (logits, cache)

    @classmethod
    @torch.no_grad()
    def from_hf(cls, hf_model: nn.Module, fused: bool = True) -> GPT:
        """A copy of a Hugging Face ``GPT2LMHeadModel`` (or ``GPT2Model``), in eval mode.

        Nothing is downloaded: pass a model you built or one already in your cache.
        """
        config = GPTConfig.from_hf(hf_model.config)
        config.fused = fused
        gpt = cls(config)
        body = getattr(hf_model, "transformer", hf_model)
        gpt.to(device=body.wte.weight.device, dtype=body.wte.weight.dtype)
        gpt.token_embedding.weight.copy_(body.wte.weight)
        gpt.position_embedding.embedding.weight.copy_(body.wpe.weight)
        for block, hf_block in zip(gpt.blocks, body.h):
            _copy_hf_block(block, hf_block)
        gpt.norm.load_state_dict(body.ln_f.state_dict())
        return gpt.eval()


def _copy_hf_block(block: Block, hf_block: nn.Module) -> None:
    """GPT-2's block weights into ``block``.

    GPT-2 stores its projections as ``Conv1D`` modules whose weight is ``(in, out)``, the
    transpose of ``nn.Linear``'s ``(out, in)``; the query, key and value projections are one
    ``c_attn`` matrix of shape ``(d, 3d)``.
    """
    attn = block.self_attn
    q_w, k_w, v_w = hf_block.attn.c_attn.weight.chunk(3, dim=1)  # 3 x (d, d)
    q_b, k_b, v_b = hf_block.attn.c_attn.bias.chunk(3)  # 3 x (d,)
    for linear, weight, bias in ((attn.q_proj, q_w, q_b), (attn.k_proj, k_w, k_b), (attn.v_proj, v_w, v_b)):
        _copy_conv1d(linear, weight, bias)
    _copy_conv1d(attn.out_proj, hf_block.attn.c_proj.weight, hf_block.attn.c_proj.bias)
    _copy_conv1d(block.ff.w1, hf_block.mlp.c_fc.weight, hf_block.mlp.c_fc.bias)
    _copy_conv1d(block.ff.w2, hf_block.mlp.c_proj.weight, hf_block.mlp.c_proj.bias)
    block.self_attn_residual.norm.load_state_dict(hf_block.ln_1.state_dict())
    block.ff_residual.norm.load_state_dict(hf_block.ln_2.state_dict())


def _copy_conv1d(linear: nn.Linear, weight: Tensor, bias: Tensor) -> None:
    """Load a ``Conv1D`` slice (``weight (in, out)``) into an ``nn.Linear`` (``weight (out, in)``)."""
    linear.weight.copy_(weight.t())
    linear.bias.copy_(bias)
