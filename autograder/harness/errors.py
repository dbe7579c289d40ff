"""The common PyTorch and Python errors of the course, read in plain words with the fix.

Each :class:`Explanation` is a regular expression over ``"Type: message"`` (e.g. ``"RuntimeError:
The size of tensor a (5) must match ..."``) and a short text saying what went wrong and how to
fix it; the text may quote the expression's named groups (``{got}``). The first match wins, so
the specific entries come before the general ones. An error no entry matches keeps its raw
message only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Explanation:
    """``plain`` explains the errors whose ``"Type: message"`` ``pattern`` matches."""

    pattern: re.Pattern[str]
    plain: str


def _explain(pattern: str, plain: str) -> Explanation:
    return Explanation(re.compile(pattern, re.DOTALL), plain)


EXPLANATIONS = (
    _explain(r"cannot assign (module|parameters|buffer) before Module\.__init__\(\) call",
             "your __init__ stores a layer on self before the module is set up: call super().__init__() as the "
             "first line of __init__, before any self.name = nn.Linear(...)."),
    _explain(r'Module \[\w+\] is missing the required "forward" function',
             "the module has no method named forward: check the spelling (forward, not foward or call) and that "
             "it is indented inside the class."),
    _explain(r"must be Tensor, not tuple|'tuple' object has no attribute|: '\w+' and 'tuple'|: 'tuple' and '\w+'",
             "a tuple reached code that wants a tensor. Attention returns two things, (output, weights): "
             "unpack them, out, weights = self.attn(...), or take the output alone with [0]."),
    _explain(r"'NoneType' object (has no attribute|is not subscriptable|is not callable|is not iterable)"
             r"|must be Tensor, not NoneType|'NoneType' and|and 'NoneType'",
             "a value is None where a tensor was expected: a function (or forward) that ends without `return` "
             "gives None. Check that every path returns its result."),
    _explain(r"The (size of tensor a|expanded size of the tensor) \(\d+\) must match",
             "two shapes do not broadcast: compared from the last dimension, each pair of sizes must be equal or "
             "one of them 1. A mask must broadcast to the scores' shape (batch, heads, q_len, k_len): a padding "
             "mask (batch, k_len) becomes mask[:, None, None, :], a causal mask (q_len, k_len) broadcasts as it "
             "is. Print the shapes on both sides of the failing line."),
    _explain(r"masked_fill_? only supports boolean masks",
             "masked_fill needs a mask of dtype torch.bool: compare to make one (mask == 0, ids != pad_id) or "
             "call mask.bool()."),
    _explain(r"view size is not compatible with input tensor's size and stride",
             "after transpose or permute a tensor is no longer contiguous in memory, and view cannot regroup it: "
             "call .contiguous() before .view(...), or use .reshape(...), which copies when it must."),
    _explain(r"shape '\[(?P<shape>[^\]]*)\]' is invalid for input of size (?P<size>\d+)",
             "view/reshape must keep the number of elements: the shape [{shape}] does not hold the tensor's "
             "{size} elements. Check the sizes you compute (d_head = d_model // n_heads), or let one dimension be "
             "-1."),
    _explain(r"mat1 and mat2 shapes cannot be multiplied \(\d+x(?P<got>\d+) and (?P<want>\d+)x\d+\)",
             "a Linear layer (or a matrix product) got an input whose last dimension has {got} features where it "
             "expects {want}: nn.Linear(in_features, out_features) needs x.shape[-1] == in_features. Check the "
             "sizes the layer was built with and which tensor you pass it."),
    _explain(r"Expected size for first two dimensions of batch2 tensor|Expected batch2_sizes",
             "a batched matrix product a @ b needs a's last dimension to equal b's second-to-last one, and the "
             "batch dimensions to agree: for scores, q @ k.transpose(-2, -1)."),
    _explain(r"(too many|not enough) values to unpack \(expected (?P<names>\d+)",
             "unpacking a shape (b, t, d = x.shape) found a tensor with another number of dimensions than the "
             "{names} names: print its shape. An extra dimension often comes from broadcasting: a mask with one axis "
             "too many makes the scores, and all that follows, one dimension larger, so check the mask's shape."),
    _explain(r"Expected target size \[",
             "cross_entropy wants the classes in dimension 1: logits (N, C) with targets (N), or (N, C, T) with "
             "(N, T). Flatten both, logits.reshape(-1, vocab) and targets.reshape(-1), or move the classes with "
             "logits.transpose(1, 2)."),
    _explain(r"Sizes of tensors must match except in dimension|Tensors must have same number of dimensions"
             r"|stack expects each tensor to be equal size",
             "torch.cat and torch.stack need tensors of the same number of dimensions and the same sizes in every "
             "dimension but the one they join: print the shapes you join."),
    _explain(r"same dtype|expected scalar type \w+ but found \w+|Found dtype \w+ but expected \w+"
             r"|Input dtype must be either a floating point|can't be cast to the desired output type",
             "tensors of different dtypes met (float32 with float64, or integer ids used as numbers): make new "
             "tensors with the input's dtype (torch.zeros(..., dtype=x.dtype), torch.zeros_like(x), "
             "x.new_tensor(...)) instead of hard-coding .float() or .double()."),
    _explain(r"same device|on the expected device|different from other tensors on|device type \w+ but got device",
             "tensors on different devices met (CPU and GPU): create new tensors on the input's device "
             "(device=x.device, torch.zeros_like(x)); a tensor a module keeps that is not a parameter should be "
             "a buffer (self.register_buffer), so that .to(device) moves it."),
    _explain(r"Dimension out of range \(expected to be in range of \[-(?P<ndim>\d+), \d+\], but got (?P<dim>-?\d+)\)",
             "dim={dim} names a dimension this tensor of {ndim} dimensions does not have. Count from the end "
             "(dim=-1 is the last) so the code works with and without a batch dimension."),
    _explain(r"IndexError: index out of range in self",
             "an embedding got an id at least as large as its number of rows: token ids must be below vocab_size "
             "(nn.Embedding's first argument), positions below max_len."),
    _explain(r"Boolean value of Tensor with more than one value is ambiguous",
             "`if`, `and`, `or` and `not` need one True or False, not a tensor of many values: choose per element "
             "with torch.where(condition, a, b), ask about all elements with .any() or .all(), and combine masks "
             "with &, | and ~."),
    _explain(r"one of the variables needed for gradient computation has been modified by an inplace operation"
             r"|a leaf Variable that requires grad is being used in an in-place operation",
             "an in-place operation (x += y, masked_fill_, x[...] = ...) changed a tensor autograd needs for the "
             "gradients: compute a new tensor instead (x = x + y, x.masked_fill(...))."),
    _explain(r"TypeError: .*(takes \d+ positional arguments? but \d+ (were|was) given"
             r"|takes from \d+ to \d+ positional arguments|missing \d+ required (positional|keyword-only) argument"
             r"|got an unexpected keyword argument)",
             "the function was called with other arguments than it accepts: keep the signature the notebook "
             "gives, its parameters in that order with their defaults, for __init__ and forward alike."),
    _explain(r"NameError: name '(?P<name>\w+)' is not defined",
             "`{name}` is not defined where this line runs: check its spelling, run the cell that defines or "
             "imports it, and inside a class write self.{name} for a member."),
    _explain(r"'Tensor' object has no attribute '(?P<attr>\w+)'",
             "tensors have no method `{attr}`: check its spelling and its name in the PyTorch documentation."),
    _explain(r"'(?P<owner>[A-Z]\w*)' object has no attribute '(?P<attr>\w+)'",
             "`{owner}` has no member `{attr}`: create it in __init__ (self.{attr} = ...) under the name the "
             "notebook uses, and spell it the same where you read it."),
)


def plain_words(error: BaseException) -> str | None:
    """What ``error`` means and how to fix it, or ``None`` for an error the table does not know."""
    text = f"{type(error).__name__}: {error}"
    for explanation in EXPLANATIONS:
        found = explanation.pattern.search(text)
        if found:
            return explanation.plain.format(**found.groupdict())
    return None
