"""Natural wrong answers to lesson 04 (feed-forward and normalisation): FFNs, GELU, SwiGLU, norms, residuals."""

from tests.support.wrong_corpus import WrongAnswer

# The learner's own (right) gelu cell, which their FeedForward uses.
GELU_CELL = '''def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


'''


def feed_forward(init: str, forward: str) -> str:
    return GELU_CELL + "class FeedForward(nn.Module):\n" + init + "\n" + forward


RIGHT_FFN_INIT = '''    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.activation = torch.relu if activation == "relu" else gelu
        self.dropout = nn.Dropout(dropout)
'''
RIGHT_FFN_FORWARD = '''    def forward(self, x):
        return self.w2(self.dropout(self.activation(self.w1(x))))
'''
RIGHT_SWIGLU_INIT = '''class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

'''
RIGHT_RESIDUAL_INIT = '''class ResidualConnection(nn.Module):
    def __init__(self, d_model, dropout=0.0, norm_first=True):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

'''

ANSWERS: list[WrongAnswer] = [
    # --- numpy_feed_forward ---
    WrongAnswer("numpy_feed_forward", '''def numpy_feed_forward(x, w1, b1, w2, b2, activation="relu"):
    h = x @ w1 + b1
    return h @ w2 + b2
''', ("non-linearity",), "the activation forgotten"),
    WrongAnswer("numpy_feed_forward", '''def numpy_feed_forward(x, w1, b1, w2, b2, activation="relu"):
    h = np.maximum(x @ w1, 0) + b1
    return h @ w2 + b2
''', ("b1 is added after",), "b1 added after the ReLU"),
    WrongAnswer("numpy_feed_forward", '''def numpy_feed_forward(x, w1, b1, w2, b2, activation="relu"):
    hidden = np.maximum(0, x @ w1 + b1)
    return hidden @ w2 + b2
''', ("still applies relu",), "ReLU whatever the activation argument says"),
    WrongAnswer("numpy_feed_forward", '''def numpy_feed_forward(x, w1, b1, w2, b2, activation="relu"):
    h = x @ w1.T + b1
    h = np.maximum(h, 0)
    return h @ w2.T + b2
''', ("line", "w1.T"), "weights applied as x @ w.T, as nn.Linear stores them"),
    # --- gelu ---
    WrongAnswer("gelu", '''def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
''', ("tanh",), "the tanh approximation"),
    WrongAnswer("gelu", '''def gelu(x):
    return 0.5 * x * (1 + torch.erf(x))
''', ("sqrt(2)",), "erf(x) instead of erf(x / sqrt(2))"),
    WrongAnswer("gelu", '''def gelu(x):
    cdf = 1.0 + torch.erf(x / math.sqrt(2.0))
    return x * cdf
''', ("1/2",), "the factor 1/2 of the normal CDF forgotten"),
    WrongAnswer("gelu", '''def gelu(x):
    return x * 0.5 * (1 + math.erf(x / math.sqrt(2)))
''', ("line", "math.erf"), "math.erf, which takes one number, given a tensor"),
    # --- FeedForward ---
    WrongAnswer("FeedForward", feed_forward(RIGHT_FFN_INIT, '''    def forward(self, x):
        return self.w2(self.dropout(self.w1(x)))
'''), ("non-linearity",), "the activation never applied"),
    WrongAnswer("FeedForward", feed_forward('''    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
''', '''    def forward(self, x):
        return self.w2(self.dropout(self.act(self.w1(x))))
'''), ("still applies relu",), "nn.ReLU whatever the activation argument says"),
    WrongAnswer("FeedForward", feed_forward(RIGHT_FFN_INIT, '''    def forward(self, x):
        return self.dropout(self.w2(self.activation(self.w1(x))))
'''), ("exactly where the notebook says",), "dropout after w2 instead of before it"),
    WrongAnswer("FeedForward", feed_forward('''    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.activation = torch.relu if activation == "relu" else gelu
        self.dropout = nn.Dropout(dropout)
''', RIGHT_FFN_FORWARD), ("super().__init__()",), "super().__init__() forgotten"),
    WrongAnswer("FeedForward", feed_forward('''    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0):
        super().__init__()
        self.w1 = nn.Linear(d_ff, d_model)
        self.w2 = nn.Linear(d_model, d_ff)
        self.activation = torch.relu if activation == "relu" else gelu
        self.dropout = nn.Dropout(dropout)
''', RIGHT_FFN_FORWARD), ("w1.weight",), "the Linear layers' widths swapped"),
    # --- SwiGLU ---
    WrongAnswer("SwiGLU", RIGHT_SWIGLU_INIT + '''    def forward(self, x):
        value = self.w1(x)
        gate = self.w3(x)
        return self.w2(value * gate * torch.sigmoid(gate))
''', ("gate is w1",), "the SiLU gate taken from w3"),
    WrongAnswer("SwiGLU", RIGHT_SWIGLU_INIT + '''    def forward(self, x):
        return self.w2(torch.sigmoid(self.w1(x)) * self.w3(x))
''', ("silu(z)",), "a sigmoid gate instead of SiLU"),
    WrongAnswer("SwiGLU", '''class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff)
        self.w2 = nn.Linear(d_ff, d_model)
        self.w3 = nn.Linear(d_model, d_ff)

    def forward(self, x):
        h = self.w1(x)
        return self.w2(h * torch.sigmoid(h) * self.w3(x))
''', ("`w1`",), "the projections keep their biases"),
    WrongAnswer("SwiGLU", RIGHT_SWIGLU_INIT + '''    def forward(self, x):
        h = self.w1(x)
        return self.w2(h * torch.sigmoid(h))
''', ("value w3 x",), "the value branch w3 forgotten"),
    # --- numpy_layer_norm ---
    WrongAnswer("numpy_layer_norm", '''def numpy_layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias
''', ("d - 1",), "the unbiased variance (ddof=1)"),
    WrongAnswer("numpy_layer_norm", '''def numpy_layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    sigma = x.std(axis=-1, keepdims=True)
    return (x - mu) / (sigma + eps) * weight + bias
''', ("sqrt(var + eps)",), "eps added to the standard deviation"),
    WrongAnswer("numpy_layer_norm", '''def numpy_layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1)
    var = ((x - mean) ** 2).mean(axis=-1)
    return (x - mean) / np.sqrt(var + eps) * weight + bias
''', ("line", "broadcast"), "keepdims forgotten"),
    WrongAnswer("numpy_layer_norm", '''def numpy_layer_norm(x, weight, bias, eps=1e-5):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean(x ** 2, axis=-1, keepdims=True) - mean ** 2
    return (x - mean) / np.sqrt(var + eps) * weight + bias
''', ("mean of the squared deviations",), "variance as mean(x^2) - mean(x)^2"),
    # --- layer_norm ---
    WrongAnswer("layer_norm", '''def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
''', ("d - 1",), "torch's var, unbiased by default"),
    WrongAnswer("layer_norm", '''def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=0, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
''', ("batchnorm",), "statistics over the batch axis"),
    WrongAnswer("layer_norm", '''def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
''', ("learned scale",), "weight and bias never applied"),
    WrongAnswer("layer_norm", '''def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    std = ((x - mean) ** 2).mean(dim=-1, keepdim=True).sqrt()
    return weight * (x - mean) / (std + eps) + bias
''', ("sqrt(var + eps)",), "eps added outside the square root"),
    # --- rms_norm ---
    WrongAnswer("rms_norm", '''def rms_norm(x, weight, eps=1e-6):
    x = x - x.mean(-1, keepdim=True)
    rms = torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps)
    return x / rms * weight
''', ("does not centre",), "the mean subtracted first, as in LayerNorm"),
    WrongAnswer("rms_norm", '''def rms_norm(x, weight, eps=1e-6):
    norm = torch.sqrt(torch.sum(x ** 2, dim=-1, keepdim=True) + eps)
    return weight * x / norm
''', ("grows with d",), "the sum of squares instead of their mean"),
    WrongAnswer("rms_norm", '''def rms_norm(x, weight, eps=1e-6):
    ms = x.pow(2).mean(dim=-1, keepdim=True)
    return x / (ms + eps) * weight
''', ("square root",), "divided by the mean square, without the root"),
    # --- ResidualConnection ---
    WrongAnswer("ResidualConnection", RIGHT_RESIDUAL_INIT + '''    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))
''', ("norm_first",), "always pre-LN, norm_first ignored"),
    WrongAnswer("ResidualConnection", RIGHT_RESIDUAL_INIT + '''    def forward(self, x, sublayer):
        if self.norm_first:
            return self.dropout(sublayer(self.norm(x)))
        return self.norm(self.dropout(sublayer(x)))
''', ("not added back",), "the skip path forgotten"),
    WrongAnswer("ResidualConnection", RIGHT_RESIDUAL_INIT + '''    def forward(self, x, sublayer):
        if self.norm_first:
            x = self.norm(x)
            return x + self.dropout(sublayer(x))
        return self.norm(x + self.dropout(sublayer(x)))
''', ("x itself",), "x overwritten by norm(x) before the skip"),
    WrongAnswer("ResidualConnection", RIGHT_RESIDUAL_INIT + '''    def forward(self, x, sublayer):
        if self.norm_first:
            return x + sublayer(self.dropout(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))
''', ("exactly where the notebook says",), "dropout on the sublayer's input instead of its output"),
    WrongAnswer("ResidualConnection", '''class ResidualConnection(nn.Module):
    def __init__(self, d_model, dropout=0.0, norm_first=True):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, sublayer):
        d = x.shape[-1]
        if self.norm_first:
            return x + self.dropout(sublayer(torch.nn.functional.layer_norm(x, (d,))))
        return torch.nn.functional.layer_norm(x + self.dropout(sublayer(x)), (d,))
''', ("norm.weight",), "a LayerNorm without learned parameters"),
]
