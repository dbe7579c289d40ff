"""Boolean attention masks.

A mask is a boolean tensor broadcastable to ``(batch, heads, q_len, k_len)``; ``True``
means "this query may attend to this key", the meaning that
``torch.nn.functional.scaled_dot_product_attention`` gives a boolean mask.
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(seq_len: int, device: torch.device | str | None = None, *, past_len: int = 0) -> Tensor:
    """Lower-triangular mask: query ``i`` may attend to keys ``j <= i``.

    With ``past_len`` cached keys in front (KV-cache decoding), the ``seq_len`` new queries
    sit at positions ``past_len .. past_len + seq_len - 1`` and the mask has shape
    ``(seq_len, past_len + seq_len)``: ``mask[i, j] = j <= past_len + i``.

    Returns a ``BoolTensor[seq_len, past_len + seq_len]``.
    """
    ones = torch.ones(seq_len, past_len + seq_len, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=past_len)


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """Mask out padded keys: ``mask[b, 0, 0, j] = tokens[b, j] != pad_id``.

    ``tokens`` is a ``LongTensor[batch, seq]``; the result, ``BoolTensor[batch, 1, 1, seq]``,
    broadcasts over heads and queries. Combine with a causal mask by ``&``.
    """
    return (tokens != pad_id)[:, None, None, :]
