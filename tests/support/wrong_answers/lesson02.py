"""Natural wrong answers to lesson 02 (attention): softmax, scores, attention, entropy, NumPy attention."""

from tests.support.wrong_corpus import WrongAnswer

# The learner's own (right) softmax and attention_scores cells, which their attention calls.
EARLIER_CELLS = '''def softmax(x, dim=-1, temperature=1.0):
    x = x / temperature
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def attention_scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


'''

ANSWERS: list[WrongAnswer] = [
    # --- softmax ---
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    exps = torch.exp(x / temperature)
    return exps / exps.sum(dim=dim, keepdim=True)
''', ("overflow",), "no max subtraction, so large logits overflow"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    x = x / temperature
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = torch.sum(e, dim=dim)
    return e / torch.where(total > 0, total, torch.ones_like(total))
''', ("keepdim",), "keepdim forgotten in the sum"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    x = x / temperature
    x_max = x.max(dim=dim).values
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    e = torch.exp(x - x_max)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s > 0, s, torch.ones_like(s))
''', ("keepdim",), "keepdim forgotten in the max"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    x = x / temperature
    m = x.max(-1, keepdim=True).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = (x - m).exp()
    total = e.sum(-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
''', ("sums to 1",), "the last dimension hard-coded instead of dim"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    z = x * temperature
    m = z.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(z - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
''', ("multiplied by the temperature",), "multiplies by the temperature"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
''', ("temperature has no effect",), "the temperature argument is never used"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    x = x / temperature
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)
''', ("every entry is -inf",), "a fully masked row gives NaN"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    x /= temperature
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
''', ("in place",), "divides the caller's tensor by the temperature in place"),
    WrongAnswer("softmax", '''def softmax(x, dim=-1, temperature=1.0):
    import torch.nn.functional as F
    return torch.nan_to_num(F.softmax(x / temperature, dim=dim))
''', ("write yourself",), "calls the library softmax"),
    # --- attention_scores ---
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    return torch.matmul(q, k.transpose(-2, -1))
''', ("sqrt",), "the scores are not scaled"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    d_k = q.size(-1)
    return q @ k.transpose(-2, -1) / d_k
''', ("divided by d_k",), "divided by d_k instead of its square root"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    return k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])
''', ("transpose",), "keys times queries: rows are keys"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    return q @ k.T / math.sqrt(q.shape[-1])
''', ("line", "k.T"), "k.T reverses every axis of a batched tensor"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    scores = q @ k.transpose(-2, -1)
    return scores / math.sqrt(q.shape[-2])
''', ("times",), "scaled by the square root of the sequence length"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    return q @ k.transpose(2, 3) / math.sqrt(q.shape[3])
''', ("line", "dimension out of range"), "axes hard-coded for 4-D inputs"),
    WrongAnswer("attention_scores", '''def attention_scores(q, k):
    d_k = torch.tensor(q.shape[-1])
    return q @ k.transpose(-2, -1) / torch.sqrt(d_k)
''', ("float32",), "sqrt(d_k) computed as a float32 tensor"),
    # --- scaled_dot_product_attention ---
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    weights = softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights
''', ("after the softmax",), "the mask applied to the weights after the softmax"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights
''', ("where the mask",), "fills where the mask is True"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, 0)
    weights = softmax(scores, dim=-1)
    return weights @ v, weights
''', ("exp(0)",), "masked scores set to 0 instead of -inf"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = softmax(scores, dim=-1)
    return weights @ v, weights
''', ("uniform",), "masked with -1e9, so a fully masked row gets uniform weights"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores)
    return weights @ v, weights
''', ("sqrt",), "the scores computed again without the scale"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-2)
    return weights @ v, weights
''', ("query axis",), "the softmax over the queries"),
    WrongAnswer("scaled_dot_product_attention", EARLIER_CELLS + '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores)
    return weights @ v
''', ("tuple",), "returns only the output, not (output, weights)"),
    # --- attention_entropy ---
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    logs = torch.log2(torch.where(weights > 0, weights, torch.ones_like(weights)))
    return -(weights * logs).sum(dim=-1)
''', ("bits",), "log base 2"),
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    safe = torch.where(weights > 0, weights, torch.ones_like(weights))
    return (weights * torch.log(safe)).sum(-1)
''', ("minus sign",), "the minus sign forgotten"),
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    safe = torch.where(weights > 0, weights, torch.ones_like(weights))
    return -(weights * safe.log()).sum(dim=-2)
''', ("query axis",), "summed over the queries"),
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    return -(weights * torch.log(weights + 1e-9)).sum(dim=-1)
''', ("small constant",), "log(w + 1e-9) shifts every value a little"),
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    return -(weights * weights.log()).sum(-1)
''', ("log(0)",), "0 * log(0) gives NaN"),
    WrongAnswer("attention_entropy", '''def attention_entropy(weights):
    p = torch.where(weights > 0, weights, torch.ones_like(weights))
    return -(weights * p.log()).mean(-1)
''', ("times",), "mean over the keys instead of the sum"),
    # --- numpy_attention ---
    WrongAnswer("numpy_attention", '''def numpy_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1)


def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = numpy_softmax(scores).astype(q.dtype)
    return weights @ v, weights
''', ("sqrt",), "the scores are not scaled"),
    WrongAnswer("numpy_attention", '''def numpy_attention(q, k, v, mask=None):
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w = w / w.sum(axis=-1, keepdims=True)
    return w @ v, w
''', ("line", "k.T"), "k.T reverses every axis of a batched array"),
    WrongAnswer("numpy_attention", '''def numpy_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1)


def numpy_attention(q, k, v, mask=None):
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d_k)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = numpy_softmax(scores, axis=1).astype(q.dtype)
    return weights @ v, weights
''', ("sums to 1 along",), "the softmax along axis 1, hard-coded"),
    WrongAnswer("numpy_attention", '''def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = scores.max(axis=-2, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=-2, keepdims=True)
    weights = (e / np.where(total > 0, total, 1)).astype(q.dtype)
    return weights @ v, weights
''', ("query axis",), "normalised over the queries (axis=-2)"),
    WrongAnswer("numpy_attention", '''def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores)
    weights = e / e.sum(axis=-1, keepdims=True)
    weights = np.nan_to_num(weights).astype(q.dtype)
    return weights @ v, weights
''', ("overflow",), "no max subtraction, so scores near 1000 overflow"),
    WrongAnswer("numpy_attention", '''def numpy_attention(q, k, v, mask=None):
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=-1, keepdims=True)
    weights = e / np.where(total > 0, total, 1)
    return weights @ v, weights
''', ("dtype",), "divides by np.sqrt(d_k), a float64 scalar, so float32 inputs give float64"),
    WrongAnswer("numpy_attention", '''def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        scores = np.where(mask, -np.inf, scores).astype(q.dtype)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=-1, keepdims=True)
    weights = (e / np.where(total > 0, total, 1)).astype(q.dtype)
    return weights @ v, weights
''', ("mask `mask` inverted",), "np.where with its two branches swapped: the kept keys are hidden"),
]
