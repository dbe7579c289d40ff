"""The key/value cache that makes autoregressive decoding linear in the new tokens.

Generating token ``t + 1`` only needs the new token's query against the keys and values
of tokens ``0..t``; those never change, so each attention layer keeps them instead of
recomputing them. One step then costs O(t) instead of O(t^2).
"""

from __future__ import annotations

import torch
from torch import Tensor


class LayerCache:
    """Keys and values of one attention layer, ``(batch, heads, cached_len, d_head)``."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return 0 if self.keys is None else self.keys.size(-2)

    def update(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' keys and values; return all of them."""
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat([self.keys, keys], dim=-2)  # (B, h, cached_len + new, d_head)
            self.values = torch.cat([self.values, values], dim=-2)  # (B, h, cached_len + new, d_head)
        return self.keys, self.values


class KVCache:
    """One :class:`LayerCache` per layer of a decoder-only model."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """How many positions are cached (the same in every layer)."""
        return self.layers[0].length

    def __getitem__(self, layer: int) -> LayerCache:
        return self.layers[layer]
