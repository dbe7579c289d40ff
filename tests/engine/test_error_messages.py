"""Errors point at the learner's own line, quoted, and read the common PyTorch errors in plain words.

Learner code is run as a notebook runs it: compiled from a cell's file name (IPython's
``/tmp/ipykernel_PID/N.py`` in a learner's kernel, ``<cell N>`` in the grading sandbox) with
its source in :mod:`linecache`. Each broken version changes one line of code that passes its
check and must fail with a report that quotes that line and explains the error.
"""

from __future__ import annotations

import linecache
import os
import subprocess
import sys
import types
from dataclasses import dataclass

import nbformat
import pytest
import torch

from autograder.checker import run_check
from autograder.grading.pipeline import grade_notebook
from autograder.grading.sandbox import Sandbox
from autograder.harness.confine import Limits
from autograder.harness.calls import MESSAGE_CHARS, raised
from autograder.harness.errors import plain_words
from tests.grading.test_grading import cells_replaced, lesson_plan
from tests.support.grading_course import LESSON
from tests.support.notebooks import ROOT

CPU = torch.device("cpu")

SDPA = '''import math
import torch

DEVICE = "meta"  # where this learner keeps tensors: a device other than the one the check runs on


def scaled_dot_product_attention(q, k, v, mask=None):
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    scores = scores - scores.amax(dim=-1, keepdim=True).clamp(min=-1e9)
    exp = scores.exp()
    weights = exp / exp.sum(dim=-1, keepdim=True).clamp(min=1e-30)
    return weights @ v, weights
'''

ATTENTION_SCORES = '''import math


def attention_scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
'''

MHA = SDPA + '''

import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def split(self, x):
        batch, length, d_model = x.shape
        return x.view(batch, length, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q = self.split(self.q_proj(query))
        k = self.split(self.k_proj(key))
        v = self.split(self.v_proj(value))
        _, weights = scaled_dot_product_attention(q, k, v, mask)
        out = self.dropout(weights) @ v
        out = out.transpose(1, 2).contiguous().view(query.shape)
        return self.out_proj(out), weights
'''

TOKEN_EMBEDDING = '''import math
import torch.nn as nn


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids):
        return self.embedding(ids) * math.sqrt(self.d_model)
'''

SOURCES = {"scaled_dot_product_attention": SDPA, "attention_scores": ATTENTION_SCORES, "MultiHeadAttention": MHA,
           "TokenEmbedding": TOKEN_EMBEDDING}


@dataclass(frozen=True)
class Broken:
    """The learner's ``name`` with ``changes`` (old text, new text) made: the report must quote ``line`` (``None``:
    the error arises before any line of the learner's runs, and the report must say so) and hold ``words``, from
    the plain-words reading of its error."""

    name: str
    changes: tuple[tuple[str, str], ...]
    line: str | None
    words: str

    def source(self) -> str:
        source = SOURCES[self.name]
        for old, new in self.changes:
            assert old in source, old
            source = source.replace(old, new)
        return source

    def lineno(self) -> int:
        """The number of the line the report must quote."""
        return [line.strip() for line in self.source().splitlines()].index(self.line) + 1


MASKED_FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'
UNPACKED = "_, weights = scaled_dot_product_attention(q, k, v, mask)"
BROKEN = {
    "mask that does not broadcast": Broken(
        "scaled_dot_product_attention", ((MASKED_FILL, MASKED_FILL.replace("~mask", "~mask.unsqueeze(1)")),),
        'scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))', "broadcast to the scores' shape"),
    "a tensor as a condition": Broken(
        "scaled_dot_product_attention", (("if mask is not None:", "if mask:"),), "if mask:", "torch.where"),
    "float32 scores times float64 values": Broken(
        "scaled_dot_product_attention", (("scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
                                          "scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(d_k)"),),
        "return weights @ v, weights", "dtype"),
    "a mask on another device": Broken(
        "scaled_dot_product_attention", ((MASKED_FILL, MASKED_FILL.replace("~mask", "~mask.to(DEVICE)")),),
        'scores = scores.masked_fill(~mask.to(DEVICE), float("-inf"))', "device=x.device"),
    "a name never defined": Broken(
        "scaled_dot_product_attention", (("    d_k = q.size(-1)\n", ""),),
        "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)", "`d_k` is not defined"),
    "a parameter missing from the signature": Broken(
        "scaled_dot_product_attention", (("mask=None", "attn_mask=None"), ("if mask is not None", "if attn_mask is not None"),
                                         ("~mask", "~attn_mask")), None, "keep the signature"),
    "dimensions counted from 1": Broken(
        "attention_scores", (("k.transpose(-2, -1) / math.sqrt(q.size(-1))", "k.transpose(3, 4) / math.sqrt(q.size(4))"),),
        "return q @ k.transpose(3, 4) / math.sqrt(q.size(4))", "dim=4 names a dimension this tensor of 4 dimensions"),
    "a layer assigned before Module.__init__": Broken(
        "MultiHeadAttention", (("        super().__init__()\n", ""),
                               ("        self.dropout = nn.Dropout(dropout)\n",
                                "        self.dropout = nn.Dropout(dropout)\n        super().__init__()\n")),
        "self.q_proj = nn.Linear(d_model, d_model)", "call super().__init__() as the first line"),
    "attention's (output, weights) passed to dropout": Broken(
        "MultiHeadAttention", ((UNPACKED, "weights = scaled_dot_product_attention(q, k, v, mask)"),),
        "out = self.dropout(weights) @ v", "unpack them"),
    "attention's (output, weights) multiplied": Broken(
        "MultiHeadAttention", ((UNPACKED, "weights = scaled_dot_product_attention(q, k, v, mask)"),
                               ("self.dropout(weights) @ v", "weights @ v")),
        "out = weights @ v", "unpack them"),
    "a shape unpacked into too few names": Broken(
        "MultiHeadAttention", (("batch, length, d_model = x.shape", "batch, length = x.shape"),),
        "batch, length = x.shape", "another number of dimensions than the 2 names"),
    "view after transpose": Broken(
        "MultiHeadAttention", (("out.transpose(1, 2).contiguous().view", "out.transpose(1, 2).view"),),
        "out = out.transpose(1, 2).view(query.shape)", ".contiguous() before .view(...), or use .reshape(...)"),
    "heads not merged before the output projection": Broken(
        "MultiHeadAttention", (("        out = out.transpose(1, 2).contiguous().view(query.shape)\n", ""),),
        "return self.out_proj(out), weights", "last dimension has 4 features where it expects 16"),
    "a member under another name": Broken(
        "MultiHeadAttention", (("return self.out_proj(out)", "return self.W_o(out)"),),
        "return self.W_o(out), weights", "`MultiHeadAttention` has no member `W_o`"),
    "forward misspelt": Broken(
        "MultiHeadAttention", (("def forward(", "def foward("),), None, "no method named forward"),
    "__init__ without the dropout parameter": Broken(
        "MultiHeadAttention", (("n_heads, dropout=0.0):", "n_heads):"), ("nn.Dropout(dropout)", "nn.Dropout(0.0)")),
        None, "keep the signature"),
    "ids shifted past the vocabulary": Broken(
        "TokenEmbedding", (("self.embedding(ids)", "self.embedding(ids + 1)"),),
        "return self.embedding(ids + 1) * math.sqrt(self.d_model)", "below vocab_size"),
}


class _Shell:
    """IPython's shell as the harness sees it in a learner's kernel: it names each cell's file "In[N]"."""

    def __init__(self):
        self.cells: dict[str, str] = {}
        self.compile = self

    def format_code_name(self, filename: str) -> tuple[str, str] | None:
        return ("Cell", self.cells[filename]) if filename in self.cells else None


@pytest.fixture
def shell(monkeypatch) -> _Shell:
    """A stand-in for IPython's shell, loaded as a kernel has it (the harness never imports IPython)."""
    shell = _Shell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    return shell


def run_cell(source: str, number: int, shell: _Shell | None = None) -> dict:
    """The namespace of ``source`` run as a Jupyter kernel runs cell In[``number``]."""
    filename = f"/tmp/ipykernel_{os.getpid()}/{number}.py"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    if shell is not None:
        shell.cells[filename] = f"In[{number}]"
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("name", SOURCES)
def test_the_unbroken_code_passes(name):
    result = run_check(run_cell(SOURCES[name], 1)[name], name, devices=[CPU])
    assert result.passed, result.message


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN)
def test_a_report_quotes_the_learners_line_and_explains_the_error(broken, shell):
    result = run_check(run_cell(broken.source(), 7, shell)[broken.name], broken.name, devices=[CPU])
    assert not result.passed
    assert "In plain words: " in result.message and broken.words in result.message, result.message
    if broken.line is None:
        told = result.message.split("In plain words: ")[0]
        assert "outside the lines of your code" in told and "`" not in told, result.message
    else:
        assert f"at cell In[7] (the cell that defines `{broken.name}`), line {broken.lineno()}: `{broken.line}`: " \
               in result.message, result.message


def test_without_ipython_a_kernels_cell_is_still_named_a_cell(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    broken = BROKEN["a name never defined"]
    result = run_check(run_cell(broken.source(), 3)[broken.name], broken.name, devices=[CPU])
    assert f"at a notebook cell (the cell that defines `{broken.name}`), line {broken.lineno()}: `{broken.line}`: " \
           in result.message, result.message


def test_an_in_place_change_that_breaks_the_gradients_is_explained(shell):
    source = SDPA.replace("    weights = exp / exp.sum(dim=-1, keepdim=True).clamp(min=1e-30)\n",
                          "    exp /= exp.sum(dim=-1, keepdim=True).clamp(min=1e-30)\n    weights = exp\n")
    result = run_check(run_cell(source, 4, shell)["scaled_dot_product_attention"], devices=[CPU])
    assert "the gradients could not be taken" in result.message
    assert "modified by an inplace operation" in result.message and "compute a new tensor instead" in result.message


def _raised_in_a_cell(source: str) -> BaseException:
    try:
        run_cell(source, 2)
    except Exception as error:
        return error
    raise AssertionError("the cell ran")


def test_an_unknown_error_keeps_its_message_and_a_long_one_is_cut_keeping_the_plain_words():
    unknown = raised(_raised_in_a_cell("def f():\n    raise ValueError('the learner\\'s own words')\nf()\n"))
    assert unknown.message == ("your code raised ValueError at a notebook cell (the cell that defines `f`), line 2: "
                               "`raise ValueError('the learner\\'s own words')`: the learner's own words.")
    error = _raised_in_a_cell("raise RuntimeError('The size of tensor a (5) must match the size of tensor b (4) at "
                              "non-singleton dimension 3' + 'x' * 5000)\n")
    long = raised(error)
    assert len(long.message) <= MESSAGE_CHARS and "at a notebook cell, line 1: `raise RuntimeError(" in long.message
    assert "x..." in long.message and long.message.endswith(f"In plain words: {plain_words(error)}"), long.message


def test_a_syntax_error_names_the_line_that_does_not_parse():
    failure = raised(_raised_in_a_cell("x = 1\ny = (x +\n"))
    assert "at a notebook cell, line 2: `y = (x +`" in failure.message, failure.message


def test_the_devices_of_a_gpu_and_the_cpu_are_explained():
    mixed = RuntimeError("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and "
                         "cpu!")
    assert "device=x.device" in plain_words(mixed)
    assert plain_words(ValueError("an error of the learner's own")) is None


@pytest.mark.slow
def test_the_grading_sandbox_names_the_cell_by_its_place_in_the_notebook(tmp_path):
    plan = lesson_plan(LESSON)
    broken = BROKEN["mask that does not broadcast"]
    unparsable = "def softmax(x, dim=-1, temperature=1.0):\n    return (x +\n"
    notebook = cells_replaced(LESSON, {broken.name: broken.source(), "softmax": unparsable})
    numbers = {cell.metadata.get("nbgrader", {}).get("grade_id"): number
               for number, cell in enumerate(notebook.cells, 1)}
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(notebook, path)
    with Sandbox(Limits(wall_seconds=60, seconds_per_call=20), [str(ROOT / "solutions")]) as sandbox:
        grades, _ = grade_notebook(sandbox, plan, path, "learner", LESSON, sandbox.limits)
    messages = {check.name: check.message for check in grades.score.checks}
    assert (f"at cell {numbers[broken.name]} (the cell that defines `{broken.name}`), line {broken.lineno()}: "
            f"`{broken.line}`: The size of tensor a") in messages[broken.name], messages[broken.name]
    assert "In plain words:" in messages[broken.name]
    assert (f"An earlier cell failed: your code raised SyntaxError at cell {numbers['softmax']}, line 2: "
            "`return (x +`") in messages["softmax"], messages["softmax"]


KERNEL_SESSION = '''
from IPython.core.interactiveshell import InteractiveShell
from ipykernel.compiler import XCachingCompiler

shell = InteractiveShell.instance(compiler_class=XCachingCompiler)
cells = ["import torch\\nfrom autograder.harness.calls import raised",
         "def merge(x):\\n    y = x.transpose(1, 2)\\n    return y.view(2, 12)",
         "try:\\n    merge(torch.randn(2, 3, 4))\\nexcept Exception as error:\\n    print(raised(error).message)"]
for cell in cells:
    shell.run_cell(cell, store_history=True)
'''


def test_in_a_jupyter_kernel_the_cell_is_named_as_jupyter_shows_it():
    pytest.importorskip("ipykernel.compiler")
    session = subprocess.run([sys.executable, "-c", KERNEL_SESSION], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
    assert session.returncode == 0, session.stderr
    assert ("your code raised RuntimeError at cell In[2] (the cell that defines `merge`), line 3: "
            "`return y.view(2, 12)`: view size is not compatible") in session.stdout, session.stdout
    assert "In plain words: after transpose or permute" in session.stdout


def test_a_helper_file_beside_the_notebook_is_the_learners_code(tmp_path, monkeypatch):
    (tmp_path / "helpers.py").write_text("def heads(x, n):\n    b, t, d = x.shape\n    return x.view(b, t, n, d // n + 1)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    error = _raised_in_a_cell("from helpers import heads\nimport torch\nheads(torch.zeros(2, 3, 8), 2)\n")
    monkeypatch.delitem(sys.modules, "helpers")
    assert raised(error).message.startswith("your code raised RuntimeError at helpers.py, line 3: "
                                            "`return x.view(b, t, n, d // n + 1)`: shape '[2, 3, 2, 5]' is invalid")
