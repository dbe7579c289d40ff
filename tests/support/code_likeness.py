"""How alike two pieces of Python code are, whatever their names, literals and comments.

A piece of code becomes a stream of tokens after normalising its syntax tree:

* docstrings are dropped (comments never reach the tree);
* every name the piece binds (its function and class names, parameters, assigned and loop
  variables, imports) is renamed ``_0``, ``_1``, ... by order of first appearance, while
  the names it only reads (``np``, ``torch``, ``len``, a helper defined elsewhere) stay;
* every number becomes ``0`` and every string ``''``; ``True``, ``False`` and ``None`` stay;
* attribute names and keyword arguments stay: they are the API (``x.reshape``, ``keepdims=``).

Two streams ``a`` and ``b`` are compared with :class:`difflib.SequenceMatcher`:
``likeness = 2 M / (|a| + |b|)`` for ``M`` matched tokens, 1 for a renamed copy.
"""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from dataclasses import dataclass

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
KEPT_CONSTANTS = (bool, type(None))
LAYOUT_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


@dataclass(frozen=True)
class CodeUnit:
    """A function, a class, or a cell's top-level statements, as normalised tokens."""

    name: str
    line: int  # where it starts, 1-based, in the source it came from
    tokens: tuple[str, ...]


def _bound_names(tree: ast.AST) -> set[str]:
    """The names ``tree`` binds: definitions, parameters, assignment targets, imports."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, DEFINITIONS):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return bound


class _Normaliser(ast.NodeTransformer):
    """Renames bound names by order of first appearance, blanks literals, drops docstrings."""

    def __init__(self, bound: set[str]):
        self.bound = bound
        self.names: dict[str, str] = {}

    def rename(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"_{len(self.names)}")

    def _drop_docstring(self, node: ast.AST) -> ast.AST:
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
        return node

    def _definition(self, node: ast.AST) -> ast.AST:
        node.name = self.rename(node.name)
        return self.generic_visit(self._drop_docstring(node))

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_Module(self, node: ast.Module) -> ast.AST:
        return self.generic_visit(self._drop_docstring(node))

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.rename(node.arg)
        node.annotation = None
        return node

    def visit_alias(self, node: ast.alias) -> ast.AST:
        if node.asname:
            node.asname = self.rename(node.asname)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, KEPT_CONSTANTS):
            return node
        return ast.Constant("" if isinstance(node.value, (str, bytes)) else 0)


def normalised_tokens(tree: ast.AST) -> tuple[str, ...]:
    """The token stream of ``tree`` (a module, function or class) after normalising it."""
    copy = ast.parse(ast.unparse(tree))
    source = ast.unparse(_Normaliser(_bound_names(copy)).visit(copy))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return tuple(token.string or tokenize.tok_name[token.type] for token in tokens if token.type not in LAYOUT_TOKENS)


def parse_cell(source: str) -> ast.Module | None:
    """A cell's syntax tree, with IPython's magic and shell lines blanked; None when it is not Python."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def code_units(source: str, top_level_only: bool = False) -> list[CodeUnit]:
    """The functions and classes of ``source`` (only its top-level ones with ``top_level_only``;
    else also the nested ones and methods, and its top-level statements as one more unit)."""
    tree = parse_cell(source)
    if tree is None:
        return []
    nodes = tree.body if top_level_only else ast.walk(tree)
    units = [
        CodeUnit(f"{type(node).__name__.removesuffix('Def').lower()} {node.name}", node.lineno, normalised_tokens(node))
        for node in nodes
        if isinstance(node, DEFINITIONS)
    ]
    statements = [node for node in tree.body if not isinstance(node, (*DEFINITIONS, ast.Import, ast.ImportFrom))]
    if statements and not top_level_only:
        module = ast.Module(body=statements, type_ignores=[])
        units.append(CodeUnit("top-level code", statements[0].lineno, normalised_tokens(module)))
    return units


def most_alike(unit: CodeUnit, candidates: list[CodeUnit], at_least: float) -> tuple[CodeUnit, float] | None:
    """The candidate most like ``unit`` with its likeness ``2 M / (|a| + |b|)`` (1.0: a renamed
    copy), if it reaches ``at_least``; else None.

    ``quick_ratio`` bounds the likeness from above cheaply, so most candidates are never
    compared in full."""
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(unit.tokens)
    best = None
    for candidate in candidates:
        matcher.set_seq1(candidate.tokens)
        if matcher.real_quick_ratio() < at_least or matcher.quick_ratio() < at_least:
            continue
        ratio = matcher.ratio()
        if ratio >= at_least and (best is None or ratio > best[1]):
            best = (candidate, ratio)
    return best
