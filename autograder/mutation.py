"""Mutation testing of the exercises' checks: does each check fail a subtly wrong solution?

For every exercise, the learner-written part of its solution cell (the lines between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` of ``solutions/<lesson>/<lesson>.ipynb``)
is mutated one small change at a time: an operator (``+`` for ``-``, ``@`` for ``*``), a
comparison, a constant (``n`` for ``n + 1`` or ``n - 1``, which turns ``dim=-1`` into
``dim=-2``), a reduction (``sum`` for ``mean``, ``max`` for ``min``), a dropped term or
call (``a + b`` for ``a``, ``x.transpose(-2, -1)`` for ``x``), swapped arguments or
outputs, an off-by-one slice, an in-place method (``masked_fill`` for ``masked_fill_``)
and a dropped statement. Each mutant runs through the exercise's visible and hidden
cases exactly as ``check()`` runs them; it is *killed* when a case fails (or it raises, or
runs out of time). The mutation score is killed / (mutants - equivalent ones), where the
equivalent mutants (a change that cannot alter any result) are listed with their reasons
in ``autograder/exercises/equivalent_mutants.json``.

    python -m autograder.mutation                  # every exercise: a table of scores
    python -m autograder.mutation --sample 4       # a deterministic sample of 4 mutants each
    python -m autograder.mutation softmax --survivors   # one exercise, listing what survives

The mutator is written here rather than taken from ``mutmut`` or ``cosmic-ray``: those
mutate files of an installed package and run a test command per mutant, while the code
under test here is one cell of a notebook, and the "test" is a check run in this process.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import json
import os
import random
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.checker import run_check
from autograder.exercise import Exercise
from autograder.harness.serve import Overtime, deadline
from autograder.registry import EXERCISES
from autograder.seeds import HIDDEN_SEED_VARIABLE

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
EQUIVALENT = Path(__file__).resolve().parent / "exercises" / "equivalent_mutants.json"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SECONDS_PER_MUTANT = 20.0
MUTATION_SEED = 1234  # the hidden cases' seed while mutants run, so that scores repeat

OPERATORS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.MatMult: ast.Mult,
             ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}
COMPARISONS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
               ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
METHOD_SWAPS = {"sum": "mean", "mean": "sum", "max": "min", "min": "max", "amax": "amin", "amin": "amax",
                "argmax": "argmin", "argmin": "argmax", "maximum": "minimum", "minimum": "maximum",
                "softmax": "log_softmax", "log_softmax": "softmax", "exp": "log", "log": "exp",
                "cumsum": "cumprod", "topk": "sort", "tril": "triu", "triu": "tril",
                "sqrt": "rsqrt", "rsqrt": "sqrt", "var": "std", "std": "var"}
IN_PLACE = {"masked_fill", "add", "sub", "mul", "div", "clamp", "exp", "fill", "scatter", "index_fill", "copy"}
SYMMETRIC_METHODS = {"transpose", "swapaxes", "swapdims"}  # x.f(a, b) == x.f(b, a)
SYMMETRIC_FUNCTIONS = {"max", "min", "maximum", "minimum", "fmax", "fmin"}  # f(a, b) == f(b, a)
DROPPABLE_CALLS = {"transpose", "t", "permute", "clone", "contiguous", "flip", "detach", "float", "squeeze",
                   "unsqueeze", "sqrt", "exp", "log", "softmax", "relu", "abs"}


@dataclass(frozen=True)
class Mutant:
    """One small change to a solution cell: ``label`` says where and what (stable while the cell is)."""

    exercise: str
    label: str
    source: str


# --- making mutants ----------------------------------------------------------------------------------

def _solution_lines(source: str) -> set[int]:
    """The 1-based line numbers between ``### BEGIN SOLUTION`` and ``### END SOLUTION``."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _number(value: ast.expr, delta: int) -> ast.expr:
    return ast.BinOp(copy.deepcopy(value), ast.Add() if delta > 0 else ast.Sub(), ast.Constant(1))


def _constant_changes(node: ast.Constant) -> list[tuple[str, Any]]:
    value = node.value
    if isinstance(value, bool):
        return [(f"{value} -> {not value}", ast.Constant(not value))]
    if isinstance(value, int):
        return [(f"{value} -> {value + 1}", ast.Constant(value + 1)), (f"{value} -> {value - 1}", ast.Constant(value - 1))]
    if isinstance(value, float):
        changed = 1.0 if value == 0 else value * 2
        return [(f"{value!r} -> {changed!r}", ast.Constant(changed))]
    return []


def _call_changes(node: ast.Call) -> list[tuple[str, Any]]:
    changes: list[tuple[str, Any]] = []
    if isinstance(node.func, ast.Attribute):
        name = node.func.attr
        for other in filter(None, (METHOD_SWAPS.get(name), f"{name}_" if name in IN_PLACE else None)):
            changed = copy.deepcopy(node)
            changed.func.attr = other
            changes.append((f".{name}( -> .{other}(", changed))
        if name in DROPPABLE_CALLS and not _is_module_call(node.func.value):
            changes.append((f"drop .{name}(...)", copy.deepcopy(node.func.value)))
    if _swappable(node):
        changed = copy.deepcopy(node)
        changed.args[0], changed.args[1] = changed.args[1], changed.args[0]
        changes.append(("swap the first two arguments", changed))
    return changes


def _swappable(node: ast.Call) -> bool:
    """Whether swapping the first two arguments can change anything: not ``transpose(a, b)`` (the
    same as ``transpose(b, a)``), nor two identical arguments (``nn.Linear(d, d)``)."""
    if len(node.args) < 2 or any(isinstance(a, ast.Starred) for a in node.args[:2]):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    method = isinstance(node.func, ast.Attribute) and not _is_module_call(node.func.value)
    symmetric = (method and name in SYMMETRIC_METHODS) or (not method and name in SYMMETRIC_FUNCTIONS)
    return not symmetric and ast.dump(node.args[0]) != ast.dump(node.args[1])


def _is_module_call(value: ast.expr) -> bool:
    """``torch.exp(x)`` or ``np.sqrt(x)``: dropping the call would leave a module, not a value."""
    return isinstance(value, ast.Name) and value.id in {"torch", "np", "F", "math", "numpy", "nn"}


def _changes(node: ast.AST) -> list[tuple[str, Any]]:
    """``(description, replacement)`` for each mutation of ``node`` itself; ``None`` replaces a statement by ``pass``."""
    if isinstance(node, ast.BinOp):
        changes = []
        if type(node.op) in OPERATORS:
            other = OPERATORS[type(node.op)]()
            changes.append((f"{type(node.op).__name__} -> {type(other).__name__}",
                            ast.BinOp(copy.deepcopy(node.left), other, copy.deepcopy(node.right))))
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            changes += [("keep only the left operand", copy.deepcopy(node.left)),
                        ("keep only the right operand", copy.deepcopy(node.right))]
        return changes
    if isinstance(node, ast.AugAssign) and type(node.op) in OPERATORS:
        other = OPERATORS[type(node.op)]()
        return [(f"{type(node.op).__name__}= -> {type(other).__name__}=",
                 ast.AugAssign(copy.deepcopy(node.target), other, copy.deepcopy(node.value))),
                ("drop the statement", None)]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        return [(f"drop {type(node.op).__name__}", copy.deepcopy(node.operand))]
    if isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return [(f"{type(node.op).__name__} -> {type(other).__name__}", ast.BoolOp(other, copy.deepcopy(node.values)))]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARISONS:
        other = COMPARISONS[type(node.ops[0])]()
        return [(f"{type(node.ops[0]).__name__} -> {type(other).__name__}",
                 ast.Compare(copy.deepcopy(node.left), [other], copy.deepcopy(node.comparators)))]
    if isinstance(node, ast.Constant):
        return _constant_changes(node)
    if isinstance(node, ast.Call):
        return _call_changes(node)
    if isinstance(node, ast.Attribute) and node.attr in ("T", "mT"):
        return [(f"drop .{node.attr}", copy.deepcopy(node.value))]
    if isinstance(node, ast.Slice):
        return [(f"{bound} {'+' if delta > 0 else '-'} 1", ast.Slice(
            *(_number(getattr(node, b), delta) if b == bound else copy.deepcopy(getattr(node, b))
              for b in ("lower", "upper", "step"))))
            for bound in ("lower", "upper") if getattr(node, bound) is not None for delta in (1, -1)]
    if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) >= 2:
        swapped = copy.deepcopy(node)
        swapped.value.elts[0], swapped.value.elts[1] = swapped.value.elts[1], swapped.value.elts[0]
        return [("swap the first two outputs", swapped)]
    if isinstance(node, (ast.Assign, ast.Expr)) and not _is_docstring(node):
        return [("drop the statement", None)]
    return []


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


class _Replace(ast.NodeTransformer):
    """Replaces the node at one position of ``ast.walk`` order (``None``: a ``pass`` statement)."""

    def __init__(self, index: int, replacement: Any):
        self.index, self.replacement, self.seen = index, replacement, -1

    def visit(self, node: ast.AST) -> Any:
        self.seen += 1
        if self.seen == self.index:
            return ast.Pass() if self.replacement is None else self.replacement
        return self.generic_visit(node)


def mutants(exercise: Exercise, source: str) -> list[Mutant]:
    """Every mutant of the solution lines of ``source``, a solution cell of ``exercise``."""
    tree = ast.parse(source)
    lines = _solution_lines(source)
    found = []
    for index, node in enumerate(_preorder(tree)):
        if getattr(node, "lineno", None) not in lines:
            continue
        for description, replacement in _changes(node):
            mutated = _Replace(index, replacement).visit(copy.deepcopy(tree))
            label = f"line {node.lineno}, column {node.col_offset}: {description}"
            found.append(Mutant(exercise.name, label, ast.unparse(ast.fix_missing_locations(mutated))))
    return found


def _preorder(tree: ast.AST) -> Iterator[ast.AST]:
    """Nodes in the order :class:`_Replace` visits them."""
    yield tree
    for child in ast.iter_child_nodes(tree):
        yield from _preorder(child)


# --- running them -------------------------------------------------------------------------------------

def _notebook_cells(lesson: str, solutions: Path) -> list:
    import nbformat

    return nbformat.read(solutions / lesson / f"{lesson}.ipynb", as_version=4).cells


def solution_cell(exercise: Exercise, solutions: Path = SOLUTIONS) -> tuple[str, dict[str, Any]]:
    """The exercise's solution cell, and the namespace of the notebook's other code cells run up to it."""
    namespace: dict[str, Any] = {"__name__": "learner_notebook"}
    for cell in _notebook_cells(exercise.lesson, solutions):
        info = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or info.get("grade"):
            continue
        if info.get("grade_id") == exercise.name:
            return cell.source, namespace
        with contextlib.redirect_stdout(io.StringIO()):  # the notebook's own messages are not the report's
            exec(compile(cell.source, f"<{exercise.lesson}>", "exec"), namespace)
    raise LookupError(f"no solution cell with grade_id {exercise.name!r} in {exercise.lesson}'s notebook")


def is_killed(mutant: Mutant, namespace: dict[str, Any]) -> bool:
    """Whether the exercise's visible or hidden cases fail the mutant (raising or running out of time counts)."""
    scope = dict(namespace)
    try:
        with deadline(SECONDS_PER_MUTANT), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a mutant's overflow warnings say nothing the verdict does not
            exec(compile(mutant.source, "<mutant>", "exec"), scope)
            learner = scope[mutant.exercise]
            return not (run_check(learner, mutant.exercise).passed
                        and run_check(learner, mutant.exercise, hidden=True).passed)
    except (Exception, Overtime):  # a mutant that cannot even run is caught by any check
        return True


def sample_of(found: list[Mutant], size: int | None) -> list[Mutant]:
    """All of ``found``, or ``size`` of them drawn by a generator seeded with the exercise's name."""
    if size is None or size >= len(found):
        return found
    return random.Random(found[0].exercise).sample(found, size)


@dataclass
class Score:
    """One exercise's mutation score."""

    exercise: str
    mutants: int
    killed: int
    equivalent: int
    survivors: list[str]

    @property
    def ratio(self) -> float:
        counted = self.mutants - self.equivalent
        return 1.0 if counted == 0 else self.killed / counted


def equivalent_mutants(path: Path = EQUIVALENT) -> dict[str, dict[str, str]]:
    """``{exercise: {mutant label: why it cannot change a result}}``."""
    return json.loads(path.read_text()) if path.is_file() else {}


def score(exercise: Exercise, sample: int | None = None, solutions: Path = SOLUTIONS) -> Score:
    """Run the exercise's mutants (all, or a deterministic ``sample`` of them) through its checks."""
    source, namespace = solution_cell(exercise, solutions)
    candidates = sample_of(mutants(exercise, source), sample)
    equivalent = equivalent_mutants().get(exercise.name, {})
    result = Score(exercise.name, len(candidates), 0, 0, [])
    for mutant in candidates:
        if mutant.label in equivalent:
            result.equivalent += 1
        elif is_killed(mutant, namespace):
            result.killed += 1
        else:
            result.survivors.append(mutant.label)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mutation scores of the exercises' checks.")
    parser.add_argument("exercises", nargs="*", help="exercise names (default: every exercise)")
    parser.add_argument("--sample", type=int, default=None, help="a deterministic sample of N mutants per exercise")
    parser.add_argument("--survivors", action="store_true", help="list the mutants no check fails")
    parser.add_argument("--minimum", type=float, default=0.95, help="exit 1 when an exercise scores below this")
    args = parser.parse_args(argv)
    os.environ[HIDDEN_SEED_VARIABLE] = str(MUTATION_SEED)
    unknown = [name for name in args.exercises if name not in EXERCISES]
    if unknown:
        parser.error(f"no exercise is called {', '.join(unknown)}")
    below = 0
    print(f"{'exercise':<32} {'mutants':>7} {'killed':>6} {'equiv.':>6} {'score':>6}")
    for name in args.exercises or list(EXERCISES):
        result = score(EXERCISES[name], args.sample)
        below += result.ratio < args.minimum
        print(f"{name:<32} {result.mutants:>7} {result.killed:>6} {result.equivalent:>6} {result.ratio:>6.0%}")
        if args.survivors:
            print("".join(f"    survives: {label}\n" for label in result.survivors), end="")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
