"""Data for the lessons: seq2seq toy tasks and an offline text corpus.

Token ids of the seq2seq toy tasks (``reverse_batch``, ``copy_batch``)::

    PAD_ID = 0   padding (reserved: the batches here are fixed-length and contain none)
    BOS_ID = 1   beginning of sequence: the first decoder input
    EOS_ID = 2   end of sequence: the last decoder label
    3, 4, ...    the ``n_symbols`` content symbols, ``FIRST_SYMBOL_ID + k`` for symbol ``k``

so a model for ``n_symbols`` symbols needs ``task_vocab_size(n_symbols)`` embeddings.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

import torch

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
FIRST_SYMBOL_ID = 3

# Pure-Python standard-library modules whose docstrings form the corpus of ``load_corpus``.
# Each exists as a ``.py`` source file in CPython 3.10 to 3.13 (no optional C extensions,
# no modules removed or turned into thin wrappers in those versions).
CORPUS_MODULES = (
    "argparse", "ast", "base64", "bisect", "calendar", "cmd", "collections", "configparser",
    "contextlib", "copy", "dataclasses", "difflib", "doctest", "email.message", "email.utils",
    "enum", "fractions", "functools", "graphlib", "heapq", "hmac", "http.client",
    "http.cookiejar", "http.server", "inspect", "ipaddress", "json", "json.decoder",
    "json.encoder", "locale", "logging", "logging.handlers", "mailbox", "numbers", "operator",
    "optparse", "pdb", "pickle", "pprint", "queue", "random", "re", "sched", "selectors",
    "shutil", "smtplib", "socket", "socketserver", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback",
    "typing", "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile",
)  # fmt: skip


def task_vocab_size(n_symbols: int) -> int:
    """Vocabulary size of a toy task with ``n_symbols`` content symbols: 3 specials + symbols."""
    return FIRST_SYMBOL_ID + n_symbols


def _random_symbols(
    batch_size: int, seq_len: int, n_symbols: int, generator: torch.Generator | None
) -> torch.Tensor:
    """LongTensor (batch_size, seq_len) of uniform symbol ids in [3, 3 + n_symbols)."""
    return torch.randint(
        FIRST_SYMBOL_ID, FIRST_SYMBOL_ID + n_symbols, (batch_size, seq_len), generator=generator
    )


def _wrap_bos_eos(body: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T + 2): prepend a ``BOS_ID`` column and append an ``EOS_ID`` column."""
    bos = torch.full((body.shape[0], 1), BOS_ID, dtype=body.dtype)
    eos = torch.full((body.shape[0], 1), EOS_ID, dtype=body.dtype)
    return torch.cat([bos, body, eos], dim=1)


def reverse_batch(
    batch_size: int,
    seq_len: int,
    n_symbols: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the sequence-reversal task.

    Returns:
        src: LongTensor (batch_size, seq_len) of random symbol ids (no specials).
        tgt: LongTensor (batch_size, seq_len + 2) = ``[BOS, src reversed..., EOS]``.
            Teacher forcing feeds ``tgt[:, :-1]`` to the decoder and predicts ``tgt[:, 1:]``.

    All sequences have length ``seq_len``, so there is no padding. ``generator`` must be a
    CPU generator; the tensors are created on the CPU and then moved to ``device``.
    """
    src = _random_symbols(batch_size, seq_len, n_symbols, generator)
    return src.to(device), _wrap_bos_eos(src.flip(1)).to(device)


def copy_batch(
    batch_size: int,
    seq_len: int,
    n_symbols: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the copy task: like ``reverse_batch`` but ``tgt = [BOS, src..., EOS]``."""
    src = _random_symbols(batch_size, seq_len, n_symbols, generator)
    return src.to(device), _wrap_bos_eos(src).to(device)


def _normalise_whitespace(doc: str) -> str:
    """Strip line ends and squeeze runs of blank lines to one (``doc`` is already dedented)."""
    lines = [line.rstrip() for line in doc.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _module_source(module_name: str) -> str:
    """The text of a standard-library module's ``.py`` file (the module is not imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not (spec.origin or "").endswith(".py"):
        raise RuntimeError(f"no source file for standard-library module {module_name!r}")
    return Path(spec.origin).read_text(encoding="utf-8")


def _is_public_definition(node: ast.AST) -> bool:
    """A ``def``, ``async def`` or ``class`` statement whose name has no leading underscore."""
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return isinstance(node, definitions) and not node.name.startswith("_")


def _module_docstrings(module_name: str) -> list[str]:
    """Docstrings of a module, its public top-level functions and classes, and their methods.

    The docstrings are read from the source with ``ast``, in source order: the module, then
    each public definition, each class followed by its public methods.
    """
    tree = ast.parse(_module_source(module_name))
    nodes: list[ast.AST] = [tree]
    for node in filter(_is_public_definition, tree.body):
        nodes.append(node)
        if isinstance(node, ast.ClassDef):
            nodes.extend(filter(_is_public_definition, node.body))
    docs = (ast.get_docstring(node) for node in nodes)  # dedented with inspect.cleandoc
    return [doc for doc in docs if doc]


@functools.lru_cache(maxsize=1)
def _full_corpus() -> str:
    """Every docstring of ``CORPUS_MODULES``, normalised, deduplicated, joined by blank lines."""
    docs = (
        _normalise_whitespace(doc) for name in CORPUS_MODULES for doc in _module_docstrings(name)
    )
    return "\n\n".join(dict.fromkeys(docs))  # dict.fromkeys keeps the first copy of each


def load_corpus(max_chars: int | None = None) -> str:
    """A small English corpus built offline from standard-library docstrings.

    The text is the docstrings of the modules in ``CORPUS_MODULES`` (in that order) and of
    their public functions, classes and methods (in source order), whitespace-normalised,
    each distinct docstring kept once, separated by blank lines: about 500 KB of English
    prose with some code examples. The docstrings are parsed from the standard library's
    source files rather than read from imported objects, so the text is the same whatever
    else is imported or patched, and under ``python -OO``. It depends only on the Python
    version, and is cached after the first call.

    Args:
        max_chars: if given, only the first ``max_chars`` characters are returned.
    """
    return _full_corpus()[:max_chars]


def lm_batches(
    ids: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a token stream for next-token prediction.

    Args:
        ids: LongTensor (N,), the tokenized corpus; requires ``N > block_size``.

    Returns:
        x: (batch_size, block_size) with ``x[b] = ids[s_b : s_b + block_size]``.
        y: (batch_size, block_size) with ``y[b] = ids[s_b + 1 : s_b + 1 + block_size]``,
            i.e. ``y[b, t]`` is the token that follows ``x[b, t]``.
        Start offsets ``s_b`` are uniform in ``[0, N - block_size)``, drawn with ``generator``
        (a CPU generator).
    """
    if ids.dim() != 1 or len(ids) <= block_size:
        raise ValueError(f"need a 1-D tensor longer than {block_size=}, got {tuple(ids.shape)}")
    starts = torch.randint(len(ids) - block_size, (batch_size, 1), generator=generator)
    positions = (starts + torch.arange(block_size)).to(ids.device)
    return ids[positions].to(device), ids[positions + 1].to(device)
