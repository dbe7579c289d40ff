"""Natural wrong answers to lesson 03 (multi-head attention): heads, masks, the module, NumPy multi-head attention."""

from tests.support.wrong_corpus import WrongAnswer

# The learner's own (right) split_heads and merge_heads cells, which their module calls.
EARLIER_CELLS = '''def split_heads(x, n_heads):
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


'''


def multi_head_attention(forward: str, init: str = "") -> str:
    """A MultiHeadAttention cell: the right ``__init__`` (or ``init``) and the learner's ``forward``."""
    init = init or '''    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
'''
    return EARLIER_CELLS + "class MultiHeadAttention(nn.Module):\n" + init + "\n" + forward


ANSWERS: list[WrongAnswer] = [
    # --- split_heads ---
    WrongAnswer("split_heads", '''def split_heads(x, n_heads):
    batch, seq, d_model = x.shape
    return x.view(batch, seq, n_heads, d_model // n_heads)
''', ("transpose",), "the view without the transpose"),
    WrongAnswer("split_heads", '''def split_heads(x, n_heads):
    batch, seq, d_model = x.shape
    return x.reshape(batch, n_heads, seq, d_model // n_heads)
''', ("transpose",), "reshaped straight to (batch, heads, seq, d_head)"),
    WrongAnswer("split_heads", '''def split_heads(x, n_heads):
    batch, seq, d_model = x.shape
    d_head = d_model // n_heads
    return x.view(batch, seq, d_head, n_heads).permute(0, 3, 1, 2)
''', ("contiguous block",), "features dealt to the heads in turn"),
    WrongAnswer("split_heads", '''def split_heads(x, n_heads):
    b, n, d = x.shape
    d_head = d / n_heads
    return x.view(b, n, n_heads, d_head).transpose(1, 2)
''', ("line", "float"), "d / n_heads is a float, which view() refuses"),
    # --- merge_heads ---
    WrongAnswer("merge_heads", '''def merge_heads(x):
    b, h, n, d = x.shape
    return x.reshape(b, n, h * d)
''', ("transpose",), "reshaped without moving the heads back"),
    WrongAnswer("merge_heads", '''def merge_heads(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).view(b, n, h * d)
''', ("contiguous",), ".view after a transpose"),
    WrongAnswer("merge_heads", '''def merge_heads(x):
    b, h, n, d = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, n, h * d)
''', ("transpose",), "permuted so that the head axis ends up last"),
    # --- causal_mask ---
    WrongAnswer("causal_mask", '''def causal_mask(seq_len, device=None):
    return torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=device))
''', ("lower triangle",), "the upper triangle"),
    WrongAnswer("causal_mask", '''def causal_mask(seq_len, device=None):
    return torch.tril(torch.ones(seq_len, seq_len, device=device), diagonal=-1).bool()
''', ("diagonal",), "the diagonal excluded"),
    WrongAnswer("causal_mask", '''def causal_mask(seq_len, device=None):
    return torch.tril(torch.ones(seq_len, seq_len, device=device))
''', ("bool",), "a float mask of ones and zeros"),
    WrongAnswer("causal_mask", '''def causal_mask(seq_len, device=None):
    mask = torch.triu(torch.ones(seq_len, seq_len, device=device), diagonal=1)
    return mask == 1
''', ("may attend",), "True above the diagonal: the positions to hide"),
    # --- padding_mask ---
    WrongAnswer("padding_mask", '''def padding_mask(tokens, pad_id):
    return (tokens == pad_id)[:, None, None, :]
''', ("real tokens",), "True marks the padding"),
    WrongAnswer("padding_mask", '''def padding_mask(tokens, pad_id):
    return tokens != pad_id
''', ("broadcast",), "the broadcast axes are missing"),
    WrongAnswer("padding_mask", '''def padding_mask(tokens, pad_id):
    return (tokens != pad_id).unsqueeze(1)
''', ("line up with the heads",), "one axis added, not two"),
    WrongAnswer("padding_mask", '''def padding_mask(tokens, pad_id):
    return (tokens != 0)[:, None, None, :]
''', ("`pad_id` argument",), "pad id 0 hard-coded"),
    WrongAnswer("padding_mask", '''def padding_mask(tokens, pad_id):
    mask = (tokens != pad_id).float()
    return mask.unsqueeze(1).unsqueeze(2)
''', ("bool",), "a float mask"),
    # --- MultiHeadAttention ---
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(out)), weights
'''), ("dropout",), "dropout never applied to the weights"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return merge_heads(self.dropout(weights) @ v), weights
'''), ("out_proj",), "the output projection forgotten"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(query), self.n_heads)
        v = split_heads(self.v_proj(query), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v)), weights
'''), ("replaced by",), "keys and values projected from the query"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v))
'''), ("tuple",), "the weights are not returned"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v)), weights
'''), ("the mask's shape",), "an extra head axis added to a mask that already has one"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        d_head = query.shape[-1] // self.n_heads
        q = split_heads(self.q_proj(query), self.n_heads) / math.sqrt(d_head)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v)), weights
'''), ("factor",), "the queries scaled again before an attention that scales"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v)), weights
''', init='''    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        super().__init__()
'''), ("super().__init__()",), "super().__init__() called last"),
    WrongAnswer("MultiHeadAttention", multi_head_attention('''    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(self.dropout(weights) @ v)), weights
''', init='''    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.n_heads = n_heads
        d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_head, bias=bias)
        self.k_proj = nn.Linear(d_model, d_head, bias=bias)
        self.v_proj = nn.Linear(d_model, d_head, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
'''), ("q_proj.weight",), "projections to the width of one head instead of all heads"),
    # --- numpy_multi_head_attention ---
    WrongAnswer("numpy_multi_head_attention", '''def numpy_multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, n, d = x.shape
    dh = d // n_heads
    q = (x @ w_q).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    k = (x @ w_k).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    v = (x @ w_v).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh).astype(x.dtype)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return out, weights
''', ("w_o",), "the output projection forgotten"),
    WrongAnswer("numpy_multi_head_attention", '''def numpy_multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, n, d = x.shape
    dh = d // n_heads
    q = (x @ w_q).reshape(b, n_heads, n, dh)
    k = (x @ w_k).reshape(b, n_heads, n, dh)
    v = (x @ w_v).reshape(b, n_heads, n, dh)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh).astype(x.dtype)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).reshape(b, n, d)
    return out @ w_o, weights
''', ("transpose",), "heads split and merged by reshapes alone"),
    WrongAnswer("numpy_multi_head_attention", '''def numpy_multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, n, d = x.shape
    dh = d // n_heads
    q = (x @ w_q).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    k = (x @ w_k).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    v = (x @ w_v).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d).astype(x.dtype)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return out @ w_o, weights
''', ("d_head",), "scores divided by sqrt(d_model) instead of sqrt(d_head)"),
    WrongAnswer("numpy_multi_head_attention", '''def numpy_multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, n, d = x.shape
    dh = d // n_heads
    q = (x @ w_q).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    k = (x @ w_k).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    v = (x @ w_v).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh).astype(x.dtype)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return out @ w_o, weights
''', ("mask has no effect",), "the mask argument never used"),
    WrongAnswer("numpy_multi_head_attention", '''def numpy_multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, n, d = x.shape
    dh = d // n_heads
    q = (x @ w_q).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    k = (x @ w_k).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    v = (x @ w_v).reshape(b, n, n_heads, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh).astype(x.dtype)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).reshape(b, n, d)
    return out @ w_o, weights
''', ("transpose",), "heads merged by a reshape without moving them back"),
]
