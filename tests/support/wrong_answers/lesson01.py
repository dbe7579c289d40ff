"""Natural wrong answers to lesson 01 (embeddings): BPE pairs and merges, embeddings, positional encodings, rotary."""

from tests.support.wrong_corpus import WrongAnswer

ANSWERS: list[WrongAnswer] = [
    # --- count_pairs ---
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    for i in range(len(ids) - 2):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts
''', ("last pair",), "the loop stops one pair early: range(len(ids) - 2)"),
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    for a, b in zip(ids, ids[1:]):
        counts[(a, b)] = 1
    return counts
''', ("count 1",), "every pair's count is set to 1 instead of increased"),
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    for i in range(0, len(ids) - 1, 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts
''', ("every other pair",), "steps by two, so overlapping pairs are skipped"),
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    for i in range(len(ids) - 1):
        pair = [ids[i], ids[i + 1]]
        if pair in counts:
            counts[pair] += 1
        else:
            counts[pair] = 1
    return counts
''', ("line", "unhashable"), "pairs kept as lists, which cannot be dict keys"),
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    prev = ids[0]
    for cur in ids[1:]:
        counts[(prev, cur)] = counts.get((prev, cur), 0) + 1
        prev = cur
    return counts
''', ("no ids", "IndexError"), "reads ids[0] first, which fails on an empty list"),
    # --- merge_pair ---
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    out = []
    i = 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out
''', ("second id",), "moves on by one after a match, so the pair's second id is copied too"),
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    out = []
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
''', ("last id",), "the loop stops before the last id, which is lost when it is not merged"),
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids
''', ("first occurrence",), "returns after the first merge"),
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and [ids[i], ids[i + 1]] == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
''', ("tuple",), "compares a list with the tuple `pair`, which is never equal, so nothing is merged"),
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids
''', ("in place",), "merges by slicing into the caller's list"),
    WrongAnswer("merge_pair", '''def merge_pair(ids, pair, new_id):
    result, i = [], 0
    while i < len(ids):
        if (ids[i], ids[i + 1]) == pair:
            result.append(new_id)
            i += 2
        else:
            result.append(ids[i])
            i += 1
    return result
''', ("line", "IndexError", "ids[i + 1]"), "reads ids[i + 1] at the last position without a bounds test"),
    # --- numpy_token_embedding ---
    WrongAnswer("numpy_token_embedding", '''def numpy_token_embedding(ids, table):
    return table[ids]
''', ("sqrt",), "the rows are looked up but not scaled"),
    WrongAnswer("numpy_token_embedding", '''def numpy_token_embedding(ids, table):
    vocab_size = len(table)
    return table[ids] * np.sqrt(vocab_size)
''', ("number of rows",), "scaled by the square root of the vocabulary size"),
    WrongAnswer("numpy_token_embedding", '''def numpy_token_embedding(ids, table):
    d_model = table.shape[1]
    one_hot = np.eye(table.shape[0])[ids]
    return one_hot @ table * np.sqrt(d_model)
''', ("dtype",), "a float64 one-hot matrix (and np.sqrt) turn float32 rows into float64"),
    WrongAnswer("numpy_token_embedding", '''def numpy_token_embedding(ids, table):
    d = table.shape[1]
    out = np.zeros((len(ids), d), dtype=table.dtype)
    for i in range(len(ids)):
        out[i] = table[ids[i]] * math.sqrt(d)
    return out
''', ("line", "broadcast"), "a loop that assumes 1-D ids"),
    # --- TokenEmbedding ---
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids):
        return self.embedding(ids) * math.sqrt(self.d_model)
''', ("super().__init__()",), "super().__init__() forgotten"),
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids):
        return self.embedding(ids) / math.sqrt(self.d_model)
''', ("divided",), "divides by sqrt(d_model) instead of multiplying"),
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = math.sqrt(vocab_size)

    def forward(self, ids):
        return self.embedding(ids) * self.scale
''', ("vocab_size",), "the scale is sqrt(vocab_size)"),
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Linear(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids):
        return self.embedding(ids) * math.sqrt(self.d_model)
''', ("embedding.weight", "shape"), "an nn.Linear instead of an nn.Embedding"),
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, ids):
        d_model = ids.shape[-1]
        return self.embedding(ids) * math.sqrt(d_model)
''', ("times",), "d_model read from the ids' last dimension (the sequence length)"),
    # --- numpy_sinusoidal_positional_encoding ---
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    pe = np.zeros((seq_len, d_model))
    pos = np.arange(seq_len)[:, None]
    div = 10000 ** (np.arange(0, d_model, 2) / d_model)
    pe[:, 0::2] = np.cos(pos / div)
    pe[:, 1::2] = np.sin(pos / div)
    return pe.astype(dtype)
''', ("cosines",), "cosines in the even columns, sines in the odd ones"),
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    pe = np.zeros((seq_len, d_model))
    for pos in range(seq_len):
        for i in range(d_model):
            angle = pos / 10000 ** (2 * i / d_model)
            pe[pos, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    return pe.astype(dtype)
''', ("share one frequency",), "the exponent uses each column's own index, not the pair's even index"),
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    positions = np.arange(1, seq_len + 1)[:, None]
    angles = positions / 10000 ** (np.arange(0, d_model, 2) / d_model)
    table = np.zeros((seq_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table.astype(dtype)
''', ("first row",), "positions counted from 1"),
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    positions = np.arange(seq_len)[:, None]
    angles = positions / 10000 ** (np.arange(d_model // 2) / d_model)
    table = np.zeros((seq_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table.astype(dtype)
''', ("2i",), "exponent i / d_model instead of 2i / d_model"),
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    positions = np.arange(seq_len)[:, None]
    angles = positions / 10000 ** (np.arange(0, d_model, 2) / d_model)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(dtype)
''', ("interleave",), "all sines, then all cosines"),
    WrongAnswer("numpy_sinusoidal_positional_encoding", '''def numpy_sinusoidal_positional_encoding(seq_len, d_model, *, dtype=np.float64):
    positions = np.arange(seq_len)[:, None]
    angles = positions / 10000 ** (np.arange(0, d_model, 2) / d_model)
    table = np.zeros((seq_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table
''', ("dtype",), "the dtype argument ignored"),
    # --- sinusoidal_positional_encoding ---
    WrongAnswer("sinusoidal_positional_encoding", '''def sinusoidal_positional_encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
    pe = torch.zeros(seq_len, d_model)
    position = torch.arange(seq_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe
''', ("dtype",), "the table made in float32 whatever dtype asks"),
    WrongAnswer("sinusoidal_positional_encoding", '''def sinusoidal_positional_encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
    pe = torch.zeros(seq_len, d_model)
    position = torch.arange(0, seq_len).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.to(dtype=dtype, device=device)
''', ("float32",), "the table computed in float32, then cast to the asked dtype"),
    WrongAnswer("sinusoidal_positional_encoding", '''def sinusoidal_positional_encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
    pos = torch.arange(seq_len, dtype=dtype, device=device)[:, None]
    freqs = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=dtype, device=device) / d_model)
    angles = pos * freqs
    return torch.stack([angles.cos(), angles.sin()], dim=-1).reshape(seq_len, d_model)
''', ("cosines",), "stacks cos before sin"),
    WrongAnswer("sinusoidal_positional_encoding", '''def sinusoidal_positional_encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
    pos = torch.arange(1, seq_len + 1, dtype=dtype, device=device)[:, None]
    freqs = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=dtype, device=device) / d_model)
    table = torch.zeros(seq_len, d_model, dtype=dtype, device=device)
    table[:, 0::2] = torch.sin(pos * freqs)
    table[:, 1::2] = torch.cos(pos * freqs)
    return table
''', ("first row",), "positions counted from 1"),
    WrongAnswer("sinusoidal_positional_encoding", '''def sinusoidal_positional_encoding(seq_len, d_model, *, dtype=torch.float32, device=None):
    pos = torch.arange(seq_len, dtype=dtype, device=device)[:, None]
    freqs = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=dtype, device=device) / d_model)
    return torch.cat([torch.sin(pos * freqs), torch.cos(pos * freqs)], dim=1)
''', ("interleave",), "sines and cosines concatenated in two halves"),
    # --- apply_rotary ---
    WrongAnswer("apply_rotary", '''def apply_rotary(x, positions=None, base=10000.0):
    seq_len, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(seq_len, device=x.device)
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angles = positions.to(x.dtype)[:, None] * theta
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()], dim=-1)
    return out.flatten(-2)
''', ("rotate-half",), "rotates adjacent pairs (x[2i], x[2i+1])"),
    WrongAnswer("apply_rotary", '''def apply_rotary(x, positions=None, base=10000.0):
    n, d = x.shape[-2], x.shape[-1]
    pos = torch.arange(n, dtype=x.dtype, device=x.device)
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    ang = pos[:, None] * inv_freq
    a, b = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([a * ang.cos() - b * ang.sin(), a * ang.sin() + b * ang.cos()], dim=-1)
''', ("`positions` argument",), "the positions argument is never used"),
    WrongAnswer("apply_rotary", '''def apply_rotary(x, positions=None, base=10000.0):
    seq_len, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(seq_len, device=x.device)
    freqs = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angles = positions.to(x.dtype)[:, None] * freqs
    cos, sin = angles.cos(), angles.sin()
    first, second = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([first * cos + second * sin, second * cos - first * sin], dim=-1)
''', ("clockwise",), "the rotation's sines have the wrong signs"),
    WrongAnswer("apply_rotary", '''def apply_rotary(x, positions=None, base=10000.0):
    seq_len, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(seq_len, device=x.device)
    freqs = 1.0 / base ** (torch.arange(d // 2, dtype=x.dtype, device=x.device) / d)
    angles = positions.to(x.dtype)[:, None] * freqs
    first, second = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([first * angles.cos() - second * angles.sin(),
                      first * angles.sin() + second * angles.cos()], dim=-1)
''', ("fall too slowly",), "exponent i/d instead of 2i/d"),
    WrongAnswer("apply_rotary", '''def apply_rotary(x, positions=None, base=10000.0):
    seq_len, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(seq_len)
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2).float() / d))
    angles = positions[:, None].float() * inv_freq
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
''', ("float32",), "the angles computed in float32 (.float()) whatever x's dtype"),
]
