"""Honest and wrong learners' versions of lesson 02's notebook, for comparing the graders.

Each :class:`Variant` starts from the solved notebook and changes it the way a learner does:
other correct formulations (orders of operations, fused operations, float64 inside,
``rsqrt``), helper modules and data files beside the notebook, scratch cells, magics,
reordered cells, edited or deleted check cells, the outputs and numbering of restarted
kernels. An honest variant must earn full marks from ``tfcourse grade``, ``tfcourse check``
and ``nbgrader autograde`` alike; a wrong one the same score from ``tfcourse check`` and
``tfcourse grade``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

Notebook = nbformat.NotebookNode


@dataclass(frozen=True)
class Variant:
    """A learner's notebook made from the solved one by ``edit``, with ``files`` beside it."""

    name: str
    edit: Callable[[Notebook], None]
    files: dict[str, str] = field(default_factory=dict)

    def notebook(self, solved: Notebook) -> Notebook:
        notebook = copy.deepcopy(solved)
        self.edit(notebook)
        return notebook

    def write(self, solved: Notebook, folder: Path, filename: str) -> Path:
        """The notebook and its files in ``folder``; the notebook's path."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        path = folder / filename
        nbformat.write(self.notebook(solved), path)
        return path


def cell(notebook: Notebook, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def solve_with(grade_id: str, source: str) -> Callable[[Notebook], None]:
    """An edit that makes the solution cell ``grade_id`` hold ``source``."""
    def edit(notebook: Notebook) -> None:
        cell(notebook, grade_id).source = source
    return edit


def edits(*steps: Callable[[Notebook], None]) -> Callable[[Notebook], None]:
    def edit(notebook: Notebook) -> None:
        for step in steps:
            step(notebook)
    return edit


def insert_scratch(source: str, after: str) -> Callable[[Notebook], None]:
    """A learner's own code cell after the cell ``after``."""
    def edit(notebook: Notebook) -> None:
        notebook.cells.insert(notebook.cells.index(cell(notebook, after)) + 1, nbformat.v4.new_code_cell(source))
    return edit


# --- other correct formulations --------------------------------------------------------------------

SOFTMAX_LOGSUMEXP = '''def softmax(x, dim=-1, temperature=1.0):
    z = x / temperature
    out = torch.exp(z - torch.logsumexp(z, dim=dim, keepdim=True))
    return torch.nan_to_num(out, nan=0.0)
'''
SOFTMAX_FLOAT64 = '''def softmax(x, dim=-1, temperature=1.0):
    z = x.double() / temperature
    m = z.amax(dim=dim, keepdim=True)
    e = torch.exp(z - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    total = e.sum(dim=dim, keepdim=True)
    return (e / torch.where(total > 0, total, torch.ones_like(total))).to(x.dtype)
'''
SOFTMAX_RECIPROCAL = '''def softmax(x, dim=-1, temperature=1.0):
    z = (x / temperature).movedim(dim, -1)
    m = z.max(dim=-1, keepdim=True).values
    m = m.masked_fill(~torch.isfinite(m), 0.0)
    e = (z - m).exp()
    total = e.sum(-1, keepdim=True)
    return (e * total.clamp_min(torch.finfo(x.dtype).tiny).reciprocal()).movedim(-1, dim)
'''
SOFTMAX_SUM_FLOAT64 = '''def softmax(x, dim=-1, temperature=1.0):
    z = x / temperature
    m = z.amax(dim=dim, keepdim=True).nan_to_num(0.0, posinf=0.0, neginf=0.0)
    e = torch.exp(z - m)
    total = torch.sum(e, dim=dim, keepdim=True, dtype=torch.float64).to(x.dtype)
    return torch.where(total > 0, e / total, torch.zeros_like(e))
'''
SCORES_EINSUM = '''def attention_scores(q, k):
    return torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
'''
SCORES_SCALE_FIRST = '''def attention_scores(q, k):
    return (q / math.sqrt(q.size(-1))) @ k.mT
'''
SCORES_RSQRT = '''def attention_scores(q, k):
    scale = torch.rsqrt(torch.tensor(float(q.shape[-1]), dtype=q.dtype, device=q.device))
    return torch.matmul(q, k.transpose(-1, -2)) * scale
'''
SCORES_LAMBDA = "attention_scores = lambda q, k: q.matmul(k.transpose(-2, -1)).div(q.shape[-1] ** 0.5)\n"
ATTENTION_WHERE_EINSUM = '''def scaled_dot_product_attention(q, k, v, mask=None):
    scores = attention_scores(q, k)
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, -math.inf))
    weights = softmax(scores)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights
'''
ATTENTION_OWN_STEPS = '''def scaled_dot_product_attention(q, k, v, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / d_k ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    weights = softmax(scores, dim=scores.dim() - 1)
    output = torch.matmul(weights, v)
    return (output, weights)
'''
ENTROPY_WHERE = '''def attention_entropy(weights):
    logs = torch.where(weights > 0, weights.log(), torch.zeros_like(weights))
    return (weights * logs).sum(dim=-1).neg()
'''
ENTROPY_XLOGY = '''def attention_entropy(weights):
    return -torch.xlogy(weights, weights).sum(-1)
'''
ENTROPY_CLAMP = '''def attention_entropy(weights):
    logs = torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny))
    return -(weights * logs).sum(-1)
'''
NUMPY_SOFTMAX = '''def numpy_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1)


'''
NUMPY_EINSUM = NUMPY_SOFTMAX + '''def numpy_attention(q, k, v, mask=None):
    scores = np.einsum("...qd,...kd->...qk", q, k) / np.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        scores = np.where(mask, scores, np.array(-np.inf, dtype=q.dtype))
    weights = numpy_softmax(scores)
    return np.einsum("...qk,...kd->...qd", weights, v), weights
'''
NUMPY_FLOAT64 = NUMPY_SOFTMAX + '''def numpy_attention(q, k, v, mask=None):
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    scores = (q64 / np.sqrt(q.shape[-1])) @ np.swapaxes(k64, -1, -2)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = numpy_softmax(scores)
    return (weights @ v64).astype(q.dtype), weights.astype(q.dtype)
'''

# --- helpers beside the notebook ----------------------------------------------------------------------

HELPERS_MODULE = '''"""My attention helpers."""
import torch


def stable_softmax(x, dim=-1, temperature=1.0):
    z = x / temperature
    m = z.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(z - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
'''
PACKAGE_MODULE = '''import torch


def entropy(weights):
    return -torch.xlogy(weights, weights).sum(-1)
'''
DATA_FILE = '{"log_base": "e", "axis": -1}\n'

# --- how a learner's notebook looks after use ---------------------------------------------------------


def restarted_kernels(notebook: Notebook) -> None:
    """Execution counts out of order and stale outputs, an old error among them."""
    for number, code in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        code.execution_count = [7, 3, 41, 2, 19, None, 5, 88, 1, 12, 30, 4][number % 12]
        code.outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="name 'softmax' is not defined",
                                               traceback=["old run"])] if number % 3 == 0 else \
            [nbformat.v4.new_output("stream", name="stdout", text="an old output\n")]


def edited_check(notebook: Notebook) -> None:
    cell(notebook, "check_softmax").source = "check(softmax, hint=1)\nassert True"
    cell(notebook, "check_attention_entropy").source = "# I commented it out\n# check(attention_entropy)"


def deleted_checks(notebook: Notebook) -> None:
    gone = {"check_softmax", "check_numpy_attention"}
    notebook.cells = [c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in gone]


def reordered(notebook: Notebook) -> None:
    """The NumPy solution and the entropy solution moved up, before the softmax exercise."""
    moved = [cell(notebook, "numpy_attention"), cell(notebook, "attention_entropy")]
    for moving in moved:
        notebook.cells.remove(moving)
    at = notebook.cells.index(cell(notebook, "softmax"))
    notebook.cells[at:at] = moved


def windows_line_endings(notebook: Notebook) -> None:
    for code in notebook.cells:
        if code.get("metadata", {}).get("nbgrader", {}).get("solution"):
            code.source = code.source.replace("\n", "\r\n")


def unicode_everywhere(notebook: Notebook) -> None:
    cell(notebook, "attention_scores").source = (
        "# Aufmerksamkeit: ähnlichkeit q·k / √d  (注意力)\n"
        "def attention_scores(q, k):\n    größe = q.shape[-1]\n    return q @ k.transpose(-2, -1) / math.sqrt(größe)\n")


def scratch_everywhere(notebook: Notebook) -> None:
    for after, source in [("softmax", "x = torch.randn(2, 5)\nprint(softmax(x).sum(-1))"),
                          ("attention_scores", "%time attention_scores(torch.randn(2, 4), torch.randn(3, 4))"),
                          ("scaled_dot_product_attention", "!echo trying attention\nresult = None"),
                          ("attention_entropy", "check(attention_entropy)  # my own check, again"),
                          ("numpy_attention", "import matplotlib\nassert np.allclose(numpy_softmax(np.zeros(3)), 1 / 3)")]:
        insert_scratch(source, after)(notebook)


HONEST = [
    Variant("softmax-logsumexp", solve_with("softmax", SOFTMAX_LOGSUMEXP)),
    Variant("softmax-float64-inside", solve_with("softmax", SOFTMAX_FLOAT64)),
    Variant("softmax-reciprocal-movedim", solve_with("softmax", SOFTMAX_RECIPROCAL)),
    Variant("softmax-sum-in-float64", solve_with("softmax", SOFTMAX_SUM_FLOAT64)),
    Variant("scores-einsum", solve_with("attention_scores", SCORES_EINSUM)),
    Variant("scores-scale-q-first", solve_with("attention_scores", SCORES_SCALE_FIRST)),
    Variant("scores-rsqrt", solve_with("attention_scores", SCORES_RSQRT)),
    Variant("scores-lambda", solve_with("attention_scores", SCORES_LAMBDA)),
    Variant("attention-where-einsum", solve_with("scaled_dot_product_attention", ATTENTION_WHERE_EINSUM)),
    Variant("attention-own-steps", solve_with("scaled_dot_product_attention", ATTENTION_OWN_STEPS)),
    Variant("entropy-where", solve_with("attention_entropy", ENTROPY_WHERE)),
    Variant("entropy-xlogy", solve_with("attention_entropy", ENTROPY_XLOGY)),
    Variant("entropy-clamp", solve_with("attention_entropy", ENTROPY_CLAMP)),
    Variant("numpy-einsum", solve_with("numpy_attention", NUMPY_EINSUM)),
    Variant("numpy-float64-inside", solve_with("numpy_attention", NUMPY_FLOAT64)),
    Variant("all-alternatives", edits(*(solve_with(g, s) for g, s in [
        ("softmax", SOFTMAX_LOGSUMEXP), ("attention_scores", SCORES_RSQRT),
        ("scaled_dot_product_attention", ATTENTION_OWN_STEPS), ("attention_entropy", ENTROPY_WHERE),
        ("numpy_attention", NUMPY_EINSUM)]))),
    Variant("helper-module", solve_with("softmax", "from helpers import stable_softmax as softmax\n"),
            {"helpers.py": HELPERS_MODULE}),
    Variant("helper-module-wrapped", solve_with("softmax", "import helpers\n\n\ndef softmax(x, dim=-1, "
                                                "temperature=1.0):\n    return helpers.stable_softmax(x, dim, "
                                                "temperature)\n"), {"helpers.py": HELPERS_MODULE}),
    Variant("helper-same-name", solve_with("softmax", "from helpers import softmax\n"),
            {"helpers.py": HELPERS_MODULE + "\n\nsoftmax = stable_softmax\n"}),
    Variant("helper-package", solve_with("attention_entropy", "from mylib.entropy import entropy\n\n\n"
                                         "def attention_entropy(weights):\n    return entropy(weights)\n"),
            {"mylib/__init__.py": "", "mylib/entropy.py": PACKAGE_MODULE}),
    Variant("data-file", solve_with("attention_entropy", "import json\nSETTINGS = json.load(open('settings.json'))\n"
                                    "\n\ndef attention_entropy(weights):\n    assert SETTINGS['log_base'] == 'e'\n"
                                    "    return -torch.xlogy(weights, weights).sum(SETTINGS['axis'])\n"),
            {"settings.json": DATA_FILE}),
    Variant("restarted-kernels", restarted_kernels),
    Variant("edited-check-cells", edited_check),
    Variant("deleted-check-cells", deleted_checks),
    Variant("reordered-cells", reordered),
    Variant("scratch-cells-and-magics", scratch_everywhere),
    Variant("windows-line-endings", windows_line_endings),
    Variant("unicode", unicode_everywhere),
    Variant("no-grad-decorator", solve_with("attention_entropy", "@torch.no_grad()\n" + ENTROPY_XLOGY)),
    Variant("typed-and-documented", solve_with("attention_scores", '''from typing import Final

SCALE_POWER: Final = -0.5


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """My scores, scaled by d ** -0.5."""
    return (q @ k.transpose(-2, -1)) * (q.shape[-1] ** SCALE_POWER)
''')),
    Variant("everything-at-once", edits(restarted_kernels, edited_check, reordered, scratch_everywhere,
                                        solve_with("softmax", "from helpers import stable_softmax as softmax\n")),
            {"helpers.py": HELPERS_MODULE, "notes/todo.txt": "finish lesson 3\n"}),
]

WRONG = [
    Variant("scores-unscaled", solve_with("attention_scores", "def attention_scores(q, k):\n"
                                          "    return q @ k.transpose(-2, -1)\n")),
    Variant("entropy-log2", solve_with("attention_entropy", "def attention_entropy(weights):\n"
                                       "    return -torch.xlogy(weights, weights).sum(-1) / math.log(2)\n")),
    Variant("softmax-missing", solve_with("softmax", "# I will do this later\n")),
    Variant("numpy-mask-ignored", edits(solve_with("numpy_attention", NUMPY_EINSUM.replace(
        "    if mask is not None:\n        scores = np.where(mask, scores, np.array(-np.inf, dtype=q.dtype))\n", "")))),
    Variant("helper-missing", solve_with("softmax", "from helpers import stable_softmax as softmax\n")),
    Variant("uses-the-reference", edits(solve_with("softmax", "from tfcourse.attention import softmax\n"),
                                        restarted_kernels)),
]
