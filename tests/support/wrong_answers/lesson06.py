"""Natural wrong answers to lesson 06 (loss, schedule, decoding, a GPT with a KV cache), as learners write them.

Each entry's ``source`` is the learner's cell (and the cells before it that it uses, written
correctly); ``words`` are what its report must say for the learner to see the mistake.
"""

from tests.support.wrong_corpus import WrongAnswer

# --- cells a later exercise builds on, written correctly -------------------------------------------

TOP_K = '''
def top_k_filter(logits, k):
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
'''

TOP_P = '''
def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(-1) - probs
    remove = torch.zeros_like(before, dtype=torch.bool).scatter(-1, order, before >= p)
    return logits.masked_fill(remove, float("-inf"))
'''


def _sampler(body: str) -> str:
    """A sample_next cell, with correct top-k and top-p cells before it."""
    return TOP_K + TOP_P + f'''
def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):{body}
'''


def _smoothing(body: str) -> str:
    return f'''
def label_smoothing_loss(logits, target, smoothing=0.1, ignore_index=-100):
    V = logits.size(-1)
    logits = logits.reshape(-1, V)
    target = target.reshape(-1){body}
'''


GPT_START = '''
def gpt_forward(params, idx, n_heads, cache=None):
    B, T = idx.shape
    past = 0 if cache is None else cache[0][0].size(-2)
    x = params["token_embedding.weight"][idx] + params["position_embedding.embedding.weight"][{positions}]
    n_layers = len({{k for k in params if k.endswith("self_attn.q_proj.weight")}})
    d = x.size(-1)
    mask = {mask}
    new_cache = []
    for i in range(n_layers):
        p = f"blocks.{{i}}."
        h = F.layer_norm(x, (d,), params[p + "self_attn_residual.norm.weight"], params[p + "self_attn_residual.norm.bias"])
        q, k, v = (F.linear(h, params[p + f"self_attn.{{n}}_proj.weight"], params[p + f"self_attn.{{n}}_proj.bias"])
                   .view(B, T, n_heads, d // n_heads).transpose(1, 2) for n in "qkv")
        if cache is not None:
            k = torch.cat([cache[i][0], k], dim=-2)
            v = torch.cat([cache[i][1], v], dim=-2)
        new_cache.append({kept})
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // n_heads)
        att = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        out = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + F.linear(out, params[p + "self_attn.out_proj.weight"], params[p + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (d,), params[p + "ff_residual.norm.weight"], params[p + "ff_residual.norm.bias"])
        h = F.gelu(F.linear(h, params[p + "ff.w1.weight"], params[p + "ff.w1.bias"]))
        x = x + F.linear(h, params[p + "ff.w2.weight"], params[p + "ff.w2.bias"])
'''
GPT_END = '''    x = F.layer_norm(x, (d,), params["norm.weight"], params["norm.bias"])
    return F.linear(x, params["lm_head.weight"]), new_cache
'''
RIGHT_MASK = "torch.ones(T, past + T, dtype=torch.bool, device=idx.device).tril(diagonal=past)"


def _gpt(positions: str = "past:past + T", mask: str = RIGHT_MASK, kept: str = "(k, v)", end: str = GPT_END) -> str:
    """A gpt_forward cell with the learner's position slice, mask, kept cache entry and ending."""
    return GPT_START.format(positions=positions, mask=mask, kept=kept) + end


BEAM = '''
def beam_search(step, prefix, beam_width=4, max_new_tokens=32, eos_id=None, length_penalty=1.0):
    beams = prefix[None, :]
    scores = torch.zeros(1, dtype=torch.float64)
    finished = []
    for L in range(1, max_new_tokens + 1):
        log_probs = torch.log_softmax(step(beams).double(), -1)
        vocab = log_probs.size(-1)
        cand = (scores[:, None] + log_probs).flatten()
        top_scores, top_idx = cand.topk(min({n_candidates}, cand.numel()))
        new_beams, new_scores = [], []
        for rank, (s, i) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
            b, tok = divmod(i, vocab)
            seq = torch.cat([beams[b], torch.tensor([tok])])
            if tok == eos_id:
                if rank < beam_width:
                    finished.append((s / {length} ** length_penalty, seq))
            else:
                new_beams.append(seq)
                new_scores.append(s)
            if len(new_beams) == beam_width:
                break
        finished = sorted(finished, key=lambda f: f[0], reverse=True)[:beam_width]
        beams = torch.stack(new_beams)
        scores = torch.tensor(new_scores, dtype=torch.float64)
        if len(finished) == beam_width and max(new_scores) / L ** length_penalty <= finished[-1][0]:
            return finished[0][1]
    finished += [(s / max_new_tokens ** length_penalty, b) for s, b in zip(scores.tolist(), beams)]
    return max(finished, key=lambda f: f[0])[1]
'''

ANSWERS = [
    # --- label_smoothing_loss -------------------------------------------------------------------
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = logits - logits.logsumexp(-1)
    keep = target != ignore_index
    y = target.masked_fill(~keep, 0)
    nll = -logp.gather(-1, y[:, None]).squeeze(-1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    return (loss * keep).sum() / keep.sum().clamp(min=1)'''), ("line", "broadcast"),
                "takes logsumexp over the last axis without keepdim=True"),
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = logits - logits.logsumexp(-1, keepdim=True)
    keep = target != ignore_index
    y = target.masked_fill(~keep, 0)
    q = torch.full_like(logp, smoothing / (V - 1))
    q = q.scatter(-1, y[:, None], 1 - smoothing)
    loss = -(q * logp).sum(-1)
    return (loss * keep).sum() / keep.sum().clamp(min=1)'''), ("eps / v",),
                "builds the smoothed target with eps / (V - 1) on the wrong classes and 1 - eps on the true one"),
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = logits - logits.logsumexp(-1, keepdim=True)
    keep = target != ignore_index
    y = target.masked_fill(~keep, 0)
    nll = -logp.gather(-1, y[:, None]).squeeze(-1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    return (loss * keep).mean()'''), ("not ignored",), "zeroes the ignored positions, then averages over all positions"),
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = logits - logits.logsumexp(-1, keepdim=True)
    keep = target != ignore_index
    nll = -logp.gather(-1, target[:, None]).squeeze(-1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    return (loss * keep).sum() / keep.sum().clamp(min=1)'''), ("line", "index"),
                "gathers with the ignored targets (-100) still in place"),
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = torch.log(torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))
    keep = target != ignore_index
    y = target.masked_fill(~keep, 0)
    nll = -logp.gather(-1, y[:, None]).squeeze(-1)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    return (loss * keep).sum() / keep.sum().clamp(min=1)'''), ("overflow",),
                "computes log p as the log of an unstabilised softmax, which overflows on large logits"),
    WrongAnswer("label_smoothing_loss", _smoothing('''
    logp = logits - logits.logsumexp(-1, keepdim=True)
    keep = target != ignore_index
    y = target.masked_fill(~keep, 0)
    picked = logp.gather(-1, y[:, None]).squeeze(-1)
    loss = (1 - smoothing) * picked + smoothing * logp.mean(-1)
    return (loss * keep).sum() / keep.sum().clamp(min=1)'''), ("sign",), "forgets the minus sign of the log-likelihood"),

    # --- noam_lr --------------------------------------------------------------------------------
    WrongAnswer("noam_lr", '''
def noam_lr(step, d_model, warmup):
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
''', ("line", "step 0"), "does not treat step 0 as step 1, so 0 ** -0.5 raises"),
    WrongAnswer("noam_lr", '''
def noam_lr(step, d_model, warmup):
    step = max(step, 1)
    return d_model ** 0.5 * min(step ** -0.5, step * warmup ** -1.5)
''', ("times",), "multiplies by sqrt(d_model) instead of dividing"),
    WrongAnswer("noam_lr", '''
def noam_lr(step, d_model, warmup):
    step = max(step, 1)
    return d_model ** -0.5 * max(step ** -0.5, step * warmup ** -1.5)
''', ("smaller",), "takes the max of the two terms"),
    WrongAnswer("noam_lr", '''
def noam_lr(step, d_model, warmup):
    step = max(step, 1)
    return d_model ** -0.5 * min(step ** -0.5, step / warmup ** -1.5)
''', ("warmup ** -1.5",), "divides by warmup ** -1.5 during the warm-up, where it should multiply"),

    # --- top_k_filter ---------------------------------------------------------------------------
    WrongAnswer("top_k_filter", '''
def top_k_filter(logits, k):
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1]
    return logits.masked_fill(logits < kth, float("-inf"))
''', ("line", "broadcast"), "takes the k-th largest value without keeping its last dimension"),
    WrongAnswer("top_k_filter", '''
def top_k_filter(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
''', ("line", "k"), "does not handle k larger than the vocabulary, where topk raises"),
    WrongAnswer("top_k_filter", '''
def top_k_filter(logits, k):
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    logits[logits < kth] = float("-inf")
    return logits
''', ("in place",), "assigns -inf into the caller's logits"),
    WrongAnswer("top_k_filter", '''
def top_k_filter(logits, k):
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.where(logits >= kth, logits, torch.zeros_like(logits))
''', ("-inf",), "sets the removed logits to 0"),

    # --- numpy_top_k_filter ---------------------------------------------------------------------
    WrongAnswer("numpy_top_k_filter", '''
def numpy_top_k_filter(logits, k):
    if k >= logits.shape[-1]:
        return logits.copy()
    kth = np.sort(logits, axis=-1)[..., -k]
    return np.where(logits < kth, -np.inf, logits)
''', ("line", "broadcast"), "indexes the k-th largest with [..., -k], dropping the axis it must broadcast along"),
    WrongAnswer("numpy_top_k_filter", '''
def numpy_top_k_filter(logits, k):
    if k >= logits.shape[-1]:
        return logits
    kth = np.sort(logits, axis=-1)[..., -k:][..., :1]
    logits[logits < kth] = -np.inf
    return logits
''', ("in place",), "writes -inf into the input array"),
    WrongAnswer("numpy_top_k_filter", '''
def numpy_top_k_filter(logits, k):
    idx = np.argsort(logits, axis=-1)[..., ::-1][..., :k]
    out = np.full_like(logits, -np.inf)
    np.put_along_axis(out, idx, np.take_along_axis(logits, idx, axis=-1), axis=-1)
    return out
''', ("ties",), "keeps exactly the k indices argsort puts first, dropping logits tied with the k-th"),

    # --- top_p_filter ---------------------------------------------------------------------------
    WrongAnswer("top_p_filter", '''
def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    remove = torch.zeros_like(cum, dtype=torch.bool).scatter(-1, order, cum > p)
    return logits.masked_fill(remove, float("-inf"))
''', ("cumsum - probs",), "uses the inclusive cumulative sum, removing the token that reaches p"),
    WrongAnswer("top_p_filter", '''
def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    remove = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(remove, float("-inf"))
''', ("vocabulary order",), "masks the logits with the removal mask still in sorted order"),
    WrongAnswer("top_p_filter", '''
def top_p_filter(logits, p):
    sorted_logits, sorted_idx = torch.sort(logits, descending=True)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    remove = cum > p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    remove = remove.scatter(-1, sorted_idx, remove)
    return logits.masked_fill(remove, float("-inf"))
''', (">= p",), "shifts the inclusive mask right by one (the usual recipe), keeping a token whose predecessors hold exactly p"),

    # --- sample_next ----------------------------------------------------------------------------
    WrongAnswer("sample_next", _sampler('''
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1).squeeze(-1)'''), ("generator",), "draws without passing the generator on"),
    WrongAnswer("sample_next", _sampler('''
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)'''), ("line", "temperature == 0"),
                "forgets the greedy case, dividing by a temperature of 0"),
    WrongAnswer("sample_next", _sampler('''
    if temperature == 0:
        return logits.argmax(-1)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)'''), ("divide by t first",),
                "applies the temperature inside the softmax, after filtering"),
    WrongAnswer("sample_next", _sampler('''
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)'''), ("shape (64, 1)",),
                "returns the (batch, 1) draw of multinomial without squeezing it"),

    # --- beam_search ----------------------------------------------------------------------------
    WrongAnswer("beam_search", BEAM.format(n_candidates="beam_width", length="L"), ("2 * beam_width",),
                "takes only beam_width candidates, so an EOS among them leaves fewer live beams"),
    WrongAnswer("beam_search", BEAM.format(n_candidates="2 * beam_width", length="len(seq)"), ("generated tokens",),
                "divides a finished score by the whole sequence's length, prefix included"),
    WrongAnswer("beam_search", BEAM.format(n_candidates="2 * beam_width", length="L").replace(
        "if tok == eos_id:", "if tok == eos_id and L > 1:"), ("eos",), "never lets a beam finish on its first token"),

    # --- gpt_forward ----------------------------------------------------------------------------
    WrongAnswer("gpt_forward", _gpt(positions=":T"), ("positions",),
                "adds the position embeddings of 0..T-1 to the new tokens, whatever is cached"),
    WrongAnswer("gpt_forward", _gpt(mask="torch.ones(T, past + T, dtype=torch.bool, device=idx.device).tril()"),
                ("tril(diagonal=past)",), "builds the causal mask aligned top-left, ignoring the cached positions"),
    WrongAnswer("gpt_forward", _gpt(end="    return F.linear(x, params[\"lm_head.weight\"]), new_cache\n"),
                ("final layernorm",), "forgets the final LayerNorm before the output head"),
    WrongAnswer("gpt_forward", _gpt(kept="(k[:, :, -T:], v[:, :, -T:])"), ("cached + new",),
                "returns only the new tokens' keys and values as the cache"),
]
