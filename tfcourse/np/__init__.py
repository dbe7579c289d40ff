"""NumPy twins of the course's PyTorch building blocks.

Each function here computes the same numbers as its PyTorch counterpart with nothing but
array arithmetic, so the from-scratch sections of the lessons can show every step.
Arrays are batch-first, ``(batch, seq, d_model)``; heads are ``(batch, heads, seq, d_head)``.
Weight matrices are stored ``(d_in, d_out)`` and applied as ``x @ w``: the TRANSPOSE of
an ``nn.Linear`` weight, which is ``(d_out, d_in)``.
"""

from tfcourse.np.attention import attention_scores, scaled_dot_product_attention, softmax
from tfcourse.np.embeddings import sinusoidal_positional_encoding
from tfcourse.np.feed_forward import feed_forward, gelu, relu
from tfcourse.np.multihead import merge_heads, multi_head_attention, split_heads
from tfcourse.np.normalization import layer_norm

__all__ = [
    "attention_scores",
    "feed_forward",
    "gelu",
    "layer_norm",
    "merge_heads",
    "multi_head_attention",
    "relu",
    "scaled_dot_product_attention",
    "sinusoidal_positional_encoding",
    "softmax",
    "split_heads",
]
