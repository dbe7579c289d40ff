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
