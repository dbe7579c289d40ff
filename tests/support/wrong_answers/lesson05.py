"""Natural wrong answers to lesson 05 (encoder, decoder, cross-attention), as learners write them.

Each entry's ``source`` is the learner's cell (and the cells before it that it uses, written
correctly); ``words`` are what its report must say for the learner to see the mistake.
"""

from tests.support.wrong_corpus import WrongAnswer

# --- cells a later exercise builds on, written correctly -------------------------------------------

CROSS_ATTENTION = '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    Lk = memory.shape[1]
    dh = d // n_heads
    q = (x @ w_q).reshape(B, Lq, n_heads, dh).transpose(0, 2, 1, 3)
    k = (memory @ w_k).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    v = (memory @ w_v).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    out, weights = numpy_attention(q, k, v, mask)
    out = out.transpose(0, 2, 1, 3).reshape(B, Lq, d)
    return out @ w_o, weights
'''

ENCODER_LAYER = '''
class EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first)
        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)

    def forward(self, x, mask=None):
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, mask)[0])
        return self.ff_residual(x, self.ff)
'''

DECODER_LAYER = '''
class DecoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first)
        self.cross_attn_residual = ResidualConnection(d_model, dropout, norm_first)
        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0])
        return self.ff_residual(x, self.ff)
'''


def _decoder_layer(forward: str, init: str = "") -> str:
    """A DecoderLayer cell with the usual members (and ``init``'s extra lines) and the learner's ``forward``."""
    return f'''
class DecoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first)
        self.cross_attn_residual = ResidualConnection(d_model, dropout, norm_first){init}

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):{forward}
'''


LAYER_NORM_HELPER = '''
def ln(h, w, b):
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + 1e-5) * w + b
'''

ANSWERS = [
    # --- numpy_cross_attention ------------------------------------------------------------------
    WrongAnswer("numpy_cross_attention", '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    Lk = memory.shape[1]
    dh = d // n_heads
    q = (x @ w_q).reshape(B, n_heads, Lq, dh)
    k = (memory @ w_k).reshape(B, n_heads, Lk, dh)
    v = (memory @ w_v).reshape(B, n_heads, Lk, dh)
    out, weights = numpy_attention(q, k, v, mask)
    return out.reshape(B, Lq, d) @ w_o, weights
''', ("transpose",), "splits the heads with a reshape alone, without moving the head axis in front of the sequence"),
    WrongAnswer("numpy_cross_attention", '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    Lk = memory.shape[1]
    dh = d // n_heads
    q = (x @ w_q).reshape(B, Lq, n_heads, dh).transpose(0, 2, 1, 3)
    k = (memory @ w_k).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    v = (memory @ w_v).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    out, weights = numpy_attention(q, k, v, mask)
    out = out.reshape(B, Lq, d)
    return out @ w_o, weights
''', ("transpose",), "merges the heads back with a reshape, forgetting the transpose"),
    WrongAnswer("numpy_cross_attention", '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    Lk = memory.shape[1]
    dh = d // n_heads
    q = (x @ w_q.T).reshape(B, Lq, n_heads, dh).transpose(0, 2, 1, 3)
    k = (memory @ w_k.T).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    v = (memory @ w_v.T).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    out, weights = numpy_attention(q, k, v, mask)
    out = out.transpose(0, 2, 1, 3).reshape(B, Lq, d)
    return out @ w_o.T, weights
''', ("x @ w",), "applies the weights in nn.Linear's layout, x @ w.T, though the arrays are given as x @ w"),
    WrongAnswer("numpy_cross_attention", '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    Lk = memory.shape[1]
    dh = d // n_heads
    q = (x @ w_q).reshape(B, Lq, n_heads, dh).transpose(0, 2, 1, 3)
    k = (memory @ w_k).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    v = (memory @ w_v).reshape(B, Lk, n_heads, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    e = np.exp(scores - scores.max(axis=-2, keepdims=True))
    weights = e / e.sum(axis=-2, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(B, Lq, d)
    return out @ w_o, weights
''', ("sums to 1 along",), "writes its own softmax and normalises over the queries (axis -2), not the keys"),
    WrongAnswer("numpy_cross_attention", '''
def numpy_cross_attention(x, memory, w_q, w_k, w_v, w_o, n_heads, mask=None):
    B, Lq, d = x.shape
    dh = d // n_heads
    def heads(t):
        return t.reshape(B, -1, n_heads, dh).transpose(0, 2, 1, 3)
    q, k, v = heads(x @ w_q), heads(x @ w_k), heads(memory @ w_v)
    out, weights = numpy_attention(q, k, v, mask)
    return out.transpose(0, 2, 1, 3).reshape(B, Lq, d) @ w_o, weights
''', ("memory",), "takes the keys from the decoder's x (only the values from memory)"),
    WrongAnswer("numpy_cross_attention", CROSS_ATTENTION.replace("return out @ w_o, weights", "return out @ w_o"),
                ("tuple", "return output, weights"), "returns the output alone, not the (output, weights) pair"),

    # --- numpy_encoder_layer --------------------------------------------------------------------
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    def ln(h, w, b):
        mu = h.mean(-1)
        return (h - mu) / np.sqrt(h.var(-1) + 1e-5) * w + b
    a = numpy_cross_attention(x, x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads, mask)[0]
    h = ln(x + a, p["norm1_weight"], p["norm1_bias"])
    f = np.maximum(h @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    return ln(h + f, p["norm2_weight"], p["norm2_bias"])
''', ("line", "broadcast"), "takes the LayerNorm's mean and variance without keepdims"),
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + LAYER_NORM_HELPER + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    a = numpy_cross_attention(x, x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads, mask)[0]
    h = ln(x + a, p["norm1_weight"], p["norm1_bias"])
    f = np.max(h @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    return ln(h + f, p["norm2_weight"], p["norm2_bias"])
''', ("np.maximum",), "writes the ReLU as np.max(z, 0), a reduction over axis 0, instead of np.maximum"),
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    def ln(h, w, b):
        return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, ddof=1, keepdims=True) + 1e-5) * w + b
    a = numpy_cross_attention(x, x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads, mask)[0]
    h = ln(x + a, p["norm1_weight"], p["norm1_bias"])
    f = np.maximum(h @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    return ln(h + f, p["norm2_weight"], p["norm2_bias"])
''', ("biased",), "uses the unbiased variance (ddof=1) in the LayerNorm"),
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + LAYER_NORM_HELPER + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    h = x + numpy_cross_attention(ln(x, p["norm1_weight"], p["norm1_bias"]), ln(x, p["norm1_weight"], p["norm1_bias"]),
                                  p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads, mask)[0]
    z = ln(h, p["norm2_weight"], p["norm2_bias"])
    return h + np.maximum(z @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
''', ("pre-ln",), "normalises before each sublayer (pre-LN, as in GPT) instead of after the addition"),
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + LAYER_NORM_HELPER + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    a = numpy_cross_attention(x, x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads)[0]
    h = ln(x + a, p["norm1_weight"], p["norm1_bias"])
    f = np.maximum(h @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    return ln(h + f, p["norm2_weight"], p["norm2_bias"])
''', ("mask",), "does not pass the mask on to the self-attention"),
    WrongAnswer("numpy_encoder_layer", CROSS_ATTENTION + LAYER_NORM_HELPER + '''
def numpy_encoder_layer(x, params, n_heads, mask=None):
    p = params
    a = numpy_cross_attention(x, x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], n_heads, mask)[0]
    h = ln(x + a, p["norm1_weight"], p["norm1_bias"])
    f = np.maximum(h @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    return ln(h + f, p["norm1_weight"], p["norm1_bias"])
''', ("norm2",), "copies the first LayerNorm line and normalises the second sublayer with norm1's parameters"),

    # --- EncoderLayer ---------------------------------------------------------------------------
    WrongAnswer("EncoderLayer", '''
class EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first)
        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)

    def forward(self, x, mask=None):
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, mask)[0])
        return self.ff_residual(x, self.ff)
''', ("super().__init__()",), "forgets super().__init__() before assigning the sub-modules"),
    WrongAnswer("EncoderLayer", ENCODER_LAYER.replace("self.self_attn(h, h, h, mask)[0]", "self.self_attn(h, h, h, mask)"),
                ("line", "unpack"), "passes the attention's (output, weights) tuple on without unpacking it"),
    WrongAnswer("EncoderLayer", ENCODER_LAYER.replace("ResidualConnection(d_model, dropout, norm_first)",
                                                      "ResidualConnection(d_model, dropout)"),
                ("norm_first",), "does not pass norm_first to the ResidualConnections, whose default is pre-LN"),
    WrongAnswer("EncoderLayer", ENCODER_LAYER.replace("lambda h: self.self_attn(h, h, h, mask)[0]",
                                                      "lambda h: self.self_attn(x, x, x, mask)[0]"),
                ("`self_attn`",), "attends over x inside the lambda instead of its argument h, the normalised input"),
    WrongAnswer("EncoderLayer", ENCODER_LAYER.replace('FeedForward(d_model, d_ff, dropout=dropout)',
                                                      'FeedForward(d_model, d_ff, "gelu", dropout)'),
                ("activation",), "builds the feed-forward network with GELU where the exercise asks for ReLU"),
    WrongAnswer("EncoderLayer", ENCODER_LAYER.replace("self.self_attn(h, h, h, mask)[0]", "self.self_attn(h, h, h)[0]"),
                ("mask",), "does not pass the padding mask to the self-attention"),

    # --- DecoderLayer ---------------------------------------------------------------------------
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, memory_mask))
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)"),
                ("line", "unpack"), "does not take [0] of the cross-attention's (output, weights) tuple"),
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory)[0])
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)"),
                ("memory_mask",), "does not pass memory_mask to the cross-attention"),
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, memory_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, tgt_mask)[0])
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)"),
                ("broadcast",), "gives the self-attention memory_mask and the cross-attention tgt_mask"),
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(x, memory, memory, memory_mask)[0])
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)"),
                ("`cross_attn`",), "queries the cross-attention with x from outside the lambda, not its normalised h"),
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.self_attn(h, memory, memory, memory_mask)[0])
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout, norm_first)"),
                ("`cross_attn`",), "copy-pastes the self-attention line and reuses self.self_attn for the cross-attention"),
    WrongAnswer("DecoderLayer", _decoder_layer('''
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0])
        return self.ff_residual(x, self.ff)''', "\n        self.ff_residual = ResidualConnection(d_model, dropout)"),
                ("`ff_residual.norm`",), "leaves norm_first out of the last ResidualConnection only"),

    # --- Encoder --------------------------------------------------------------------------------
    WrongAnswer("Encoder", ENCODER_LAYER + '''
class Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
''', ("final norm", "post-ln"), "always ends with a LayerNorm, also in a post-LN stack whose layers already normalise"),
    WrongAnswer("Encoder", ENCODER_LAYER + '''
class Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x
''', ("final norm", "pre-ln"), "defines self.norm but never applies it, so a pre-LN stack ends unnormalised"),
    WrongAnswer("Encoder", ENCODER_LAYER + '''
class Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        layer = EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
        self.layers = nn.ModuleList([layer] * n_layers)
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
''', ("share",), "repeats one layer object n_layers times, so the layers share their weights"),
    WrongAnswer("Encoder", ENCODER_LAYER + '''
class Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
''', ("layers.0",), "does not pass norm_first on to the layers, so they are always post-LN"),
    WrongAnswer("Encoder", ENCODER_LAYER + '''
class Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = [EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers)]
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
''', ("nn.ModuleList",), "keeps the layers in a Python list, which hides their parameters from the module"),

    # --- Decoder --------------------------------------------------------------------------------
    WrongAnswer("Decoder", DECODER_LAYER + '''
class Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        for layer in self.layers:
            x = layer(x, memory, memory_mask, tgt_mask)
        return self.norm(x)
''', ("broadcast",), "passes the two masks to the layers in the wrong order"),
    WrongAnswer("Decoder", DECODER_LAYER + '''
class Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask)
        return self.norm(x)
''', ("final norm", "post-ln"), "adds a final LayerNorm to post-LN stacks too"),
    WrongAnswer("Decoder", DECODER_LAYER + '''
class Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        out = x
        for layer in self.layers:
            out = layer(x, memory, tgt_mask, memory_mask)
        return self.norm(out)
''', ("previous layer",), "feeds every layer the stack's input x instead of the previous layer's output"),
    WrongAnswer("Decoder", DECODER_LAYER + '''
class Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        for layer in self.layers:
            x = layer(x, memory, tgt_mask)
        return self.norm(x)
''', ("memory_mask",), "passes tgt_mask to the layers but forgets memory_mask"),
    WrongAnswer("Decoder", DECODER_LAYER + '''
class Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                                     for _ in range(n_layers)])
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask)
            memory = x
        return self.norm(x)
''', ("memory",), "feeds the decoder's own output to the next layer as memory"),
]
