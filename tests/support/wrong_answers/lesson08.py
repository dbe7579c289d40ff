"""Natural wrong answers to lesson 08 (bonus, the modern decoder and beyond): rotary positions, shared key/value
heads, expert routing and the load-balancing loss, then efficient attention, vision and retrieval."""

from tests.support.wrong_corpus import WrongAnswer

ANSWERS: list[WrongAnswer] = [
    # --- apply_rope ---
    WrongAnswer("apply_rope", '''def apply_rope(x, cos, sin, positions):
    T = x.shape[2]
    c = cos[:T]
    s = sin[:T]
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)
''', ("own position",), "the first T rows of the table, whatever the positions"),
    WrongAnswer("apply_rope", '''def apply_rope(x, cos, sin, positions):
    c = cos[positions[0]]
    s = sin[positions[0]]
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat((a * c - b * s, a * s + b * c), -1)
''', ("positions of the first",), "the first sequence's positions used for the whole batch"),
    WrongAnswer("apply_rope", '''def apply_rope(x, cos, sin, positions):
    c = cos[positions].unsqueeze(1)
    s = sin[positions].unsqueeze(1)
    x_even = x[..., ::2]
    x_odd = x[..., 1::2]
    out = torch.stack([x_even * c - x_odd * s, x_even * s + x_odd * c], dim=-1)
    return out.flatten(-2)
''', ("x_{i + d/2}",), "adjacent pairs rotated, the interleaved convention"),
    WrongAnswer("apply_rope", '''def apply_rope(x, cos, sin, positions):
    c = cos[positions][:, None]
    s = sin[positions][:, None]
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c + x2 * s, -x1 * s + x2 * c], dim=-1)
''', ("-theta",), "the rotation by minus the angle"),
    WrongAnswer("apply_rope", '''def apply_rope(x, cos, sin, positions):
    c = cos[positions]
    s = sin[positions]
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)
''', ("shape",), "the table rows without a head axis: the batch lines up with the heads"),
    # --- repeat_kv ---
    WrongAnswer("repeat_kv", '''def repeat_kv(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)
''', ("h // n_rep",), "the heads tiled (0, 1, 0, 1) instead of repeated in a row"),
    WrongAnswer("repeat_kv", '''def repeat_kv(x, n_rep):
    return torch.cat([x] * n_rep, dim=1)
''', ("in a row",), "the heads concatenated n_rep times, cycling through them"),
    WrongAnswer("repeat_kv", '''def repeat_kv(x, n_rep):
    return torch.repeat_interleave(x, n_rep, dim=2)
''', ("dim=1",), "the positions repeated instead of the heads"),
    # --- top_k_routing ---
    WrongAnswer("top_k_routing", '''def top_k_routing(router_logits, k):
    probs = torch.softmax(router_logits, dim=-1)
    weights, indices = torch.topk(probs, k, dim=-1)
    return weights, indices
''', ("renormalise",), "the chosen probabilities of the full softmax, not renormalised"),
    WrongAnswer("top_k_routing", '''def top_k_routing(router_logits, k):
    values, indices = router_logits.topk(k)
    return values, indices
''', ("logits",), "the raw logits as mixing weights"),
    WrongAnswer("top_k_routing", '''def top_k_routing(router_logits, k):
    order = torch.argsort(router_logits, dim=-1)
    indices = order[..., :k]
    weights = torch.softmax(torch.gather(router_logits, -1, indices), dim=-1)
    return weights, indices
''', ("lowest",), "argsort ascending: the k worst experts"),
    WrongAnswer("top_k_routing", '''def top_k_routing(router_logits, k):
    top, idx = torch.topk(router_logits, k, dim=1)
    return torch.softmax(top, dim=1), idx
''', ("last axis",), "dim=1 instead of the last axis: a batch of sequences routed along the sequence"),
    # --- load_balancing_loss ---
    WrongAnswer("load_balancing_loss", '''def load_balancing_loss(router_logits, expert_indices):
    n = router_logits.shape[-1]
    probs = torch.softmax(router_logits, dim=-1)
    mask = torch.nn.functional.one_hot(expert_indices, n).sum(dim=-2).to(probs.dtype)
    f = mask.mean(dim=0)
    P = probs.mean(dim=0)
    return n * (f * P).sum()
''', ("sums to k",), "f counted per token, so that it sums to k (Mixtral's code's convention)"),
    WrongAnswer("load_balancing_loss", '''def load_balancing_loss(router_logits, expert_indices):
    n_experts = router_logits.shape[-1]
    P = torch.softmax(router_logits, dim=-1).reshape(-1, n_experts).mean(0)
    f = torch.bincount(expert_indices.flatten(), minlength=n_experts) / expert_indices.numel()
    return (f.to(P.dtype) * P).sum()
''', ("n_experts",), "the factor n_experts forgotten"),
    WrongAnswer("load_balancing_loss", '''def load_balancing_loss(router_logits, expert_indices):
    n_experts = router_logits.shape[-1]
    P = torch.softmax(router_logits, dim=-1).reshape(-1, n_experts).mean(0)
    return n_experts * (P * P).sum()
''', ("counts where the tokens",), "f taken from the probabilities instead of the counts"),
    WrongAnswer("load_balancing_loss", '''def load_balancing_loss(router_logits, expert_indices):
    n_experts = router_logits.shape[-1]
    P = router_logits.reshape(-1, n_experts).mean(0)
    counts = torch.bincount(expert_indices.flatten(), minlength=n_experts)
    f = counts.to(P.dtype) / expert_indices.numel()
    return n_experts * torch.sum(f * P)
''', ("softmax",), "P averaged from the logits rather than the probabilities"),
    WrongAnswer("load_balancing_loss", '''def load_balancing_loss(router_logits, expert_indices):
    n_experts = router_logits.shape[-1]
    P = torch.softmax(router_logits, dim=-1).reshape(-1, n_experts).mean(0)
    counts = torch.bincount(expert_indices.flatten(), minlength=n_experts).float()
    f = counts / expert_indices.numel()
    return n_experts * (f * P).sum()
''', ("dtype",), "f counted in float32: a float64 loss comes back float32"),
]

# --- efficient attention, vision, retrieval ---
ANSWERS += [
    # --- sliding_window_mask ---
    WrongAnswer("sliding_window_mask", '''def sliding_window_mask(seq_len, window, device=None):
    i = torch.arange(seq_len, device=device)[:, None]
    j = torch.arange(seq_len, device=device)[None, :]
    return (j <= i) & (i - j <= window)
''', ("window + 1 keys",), "i - j <= window: one key more than the window"),
    WrongAnswer("sliding_window_mask", '''def sliding_window_mask(seq_len, window, device=None):
    i = torch.arange(seq_len, device=device)
    return (i[:, None] - i[None, :]).abs() < window
''', ("future",), "a band around the diagonal that also sees the next keys"),
    WrongAnswer("sliding_window_mask", '''def sliding_window_mask(seq_len, window, device=None):
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)
    return torch.triu(mask, diagonal=1) | torch.tril(mask, diagonal=-window)
''', ("may attend",), "True marks the keys to hide"),
    # --- linear_attention ---
    WrongAnswer("linear_attention", '''def linear_attention(q, k, v, causal=False, eps=1e-6):
    q, k = F.elu(q), F.elu(k)
    if causal:
        S = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
        num = (q.unsqueeze(-2) @ S).squeeze(-2)
        den = (q * torch.cumsum(k, dim=-2)).sum(-1, keepdim=True)
    else:
        num = q @ (k.transpose(-2, -1) @ v)
        den = q @ k.sum(-2).unsqueeze(-1)
    return num / (den + eps)
''', ("+ 1",), "elu without the + 1"),
    WrongAnswer("linear_attention", '''def linear_attention(q, k, v, causal=False, eps=1e-6):
    q, k = F.elu(q) + 1, F.elu(k) + 1
    kv = k.transpose(-2, -1) @ v
    z = k.sum(-2, keepdim=True)
    return (q @ kv) / ((q * z).sum(-1, keepdim=True) + eps)
''', ("j <= i",), "causal forgotten: every query sums all keys"),
    WrongAnswer("linear_attention", '''def linear_attention(q, k, v, causal=False, eps=1e-6):
    q, k = F.elu(q) + 1, F.elu(k) + 1
    if causal:
        S = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
        return (q.unsqueeze(-2) @ S).squeeze(-2)
    return q @ (k.transpose(-2, -1) @ v)
''', ("normaliser",), "the division by the normaliser forgotten"),
    # --- patchify ---
    WrongAnswer("patchify", '''def patchify(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, -1, p * p * C)
''', ("channel first",), "patches flattened (p, p, C) as in an einops recipe"),
    WrongAnswer("patchify", '''def patchify(images, patch_size):
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), C * patch_size * patch_size)
''', ("reshape",), "a reshape alone, without moving the axes"),
    WrongAnswer("patchify", '''def patchify(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(B, -1, C * p * p)
''', ("reading order",), "the patch grid walked column by column"),
    # --- bm25_scores ---
    WrongAnswer("bm25_scores", '''def bm25_scores(tf, query, k1=1.5, b=0.75):
    N = tf.shape[0]
    df = (tf > 0).to(tf.dtype).sum(dim=0)
    idf = torch.log((N - df + 0.5) / (df + 0.5))
    dl = tf.sum(dim=1, keepdim=True)
    part = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / dl.mean()))
    return (part * idf * query).sum(dim=1)
''', ("1 +",), "Robertson's idf, negative for common words"),
    WrongAnswer("bm25_scores", '''def bm25_scores(tf, query, k1=1.5, b=0.75):
    N = tf.shape[0]
    df = (tf > 0).to(tf.dtype).sum(dim=0)
    idf = torch.log(1 + (N - df + 0.5) / (df + 0.5))
    part = tf * (k1 + 1) / (tf + k1)
    return (part * idf * query).sum(dim=1)
''', ("avgdl",), "the document length left out"),
    WrongAnswer("bm25_scores", '''def bm25_scores(tf, query, k1=1.5, b=0.75):
    N = tf.shape[0]
    df = (tf > 0).to(tf.dtype).sum(dim=0)
    idf = torch.log(1 + (N - df + 0.5) / (df + 0.5))
    dl = tf.sum(dim=1, keepdim=True)
    part = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / dl.mean()))
    return (part * idf * (query > 0)).sum(dim=1)
''', ("counts twice",), "each query word counted once"),
    WrongAnswer("bm25_scores", '''def bm25_scores(tf, query, k1=1.5, b=0.75):
    N = tf.shape[0]
    df = (tf > 0).sum(dim=0)
    idf = torch.log(1 + (N - df + 0.5) / (df + 0.5))
    dl = tf.sum(dim=1, keepdim=True)
    part = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / dl.mean()))
    return (part * idf * query).sum(dim=1)
''', ("float32",), "document frequencies counted in integers, so the idf comes out in float32"),
]
