"""No page of the book holds, as runnable code, the solution of a graded exercise.

Every exercise's solution (its cell in ``solutions/<lesson>/<lesson>.ipynb``, the code
around and between ``### BEGIN SOLUTION`` / ``### END SOLUTION``) is compared with every
code block of every ``book/*.md`` page: the ``{code-cell}`` cells the build executes and
the plain ``python`` blocks a reader can paste, except those inside an admonition titled
"After you have tried..." with ``:class: dropdown`` (collapsed, never executed).

Both sides are normalised (:mod:`tests.support.code_likeness`): docstrings and comments
dropped, every name the code defines or reads renamed by order of first use, every
literal replaced by its kind; attribute names and keywords stay, since they are the API
(``x.reshape``, ``keepdims=``). A solution's function or class is a copy when the token
streams of it and of some function or class of a cell, or of a cell's top-level
statements, match with a :func:`difflib.SequenceMatcher` ratio of at least
:data:`COPY_RATIO`. A call of the reference, such as ``tfcourse.np.attention(q, k, v)``,
is far shorter than any solution, so it never counts (a test checks it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.registry import EXERCISES, LESSONS
from tests.support.code_likeness import CodeUnit, code_units, most_alike

markdown_it = pytest.importorskip("markdown_it")
colon_fence = pytest.importorskip("mdit_py_plugins.colon_fence")

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
# Tuned on the book as it was before its copies were removed: its copies of solutions
# (renamed, a line changed) scored 0.79-1.0 (lesson 01's BPE merge and sinusoidal table, 04's
# GELU, 06's Noam schedule, 07's majority vote); functions unrelated to a solution reach
# 0.68 when both are short. Translations (a NumPy twin of a PyTorch solution, such as 06's
# top-p and label smoothing) share the idea but few tokens (0.45-0.55): no token likeness
# tells them from honest code, so they are for the reviewer of a page.
COPY_RATIO = 0.75
EXEMPT_TITLE = re.compile(r"^After you have tried\b", re.IGNORECASE)
DIRECTIVE = re.compile(r"^\{(?P<name>[\w-]+)\}\s*(?P<argument>.*)$")
PYTHON_LANGUAGES = {"python", "python3", "py", "ipython", "ipython3"}
OPTION_LINE = re.compile(r"^:[\w-]+:.*$")


@dataclass(frozen=True)
class BookCell:
    """A code block of a page: its source, where it starts, and whether the build runs it."""

    page: str
    line: int
    source: str


def _parser():
    return markdown_it.MarkdownIt("commonmark").use(colon_fence.colon_fence_plugin)


def _split_options(content: str) -> tuple[set[str], str, int]:
    """A directive's ``:key: value`` option lines (or ``---`` YAML block), its body, and the body's line offset."""
    lines = content.split("\n")
    if lines and lines[0].strip() == "---":
        end = lines.index("---", 1) if "---" in lines[1:] else 0
        return set(lines[1:end]), "\n".join(lines[end + 1 :]), end + 1
    count = next((i for i, line in enumerate(lines) if not OPTION_LINE.match(line.strip())), len(lines))
    return {line.strip() for line in lines[:count]}, "\n".join(lines[count:]), count


def is_exempt(name: str, argument: str, options: set[str]) -> bool:
    """An admonition titled "After you have tried..." that is collapsed (``:class: dropdown``)."""
    collapsed = any(option.startswith(":class:") and "dropdown" in option.split() for option in options)
    return name == "admonition" and EXEMPT_TITLE.match(argument) is not None and collapsed


def code_blocks(page: str, text: str, first_line: int = 1) -> list[BookCell]:
    """The code blocks of a page's Markdown ``text`` (which starts on line ``first_line``), outside exempt blocks."""
    cells = []
    for token in _parser().parse(text):
        if token.type not in {"fence", "colon_fence"} or token.map is None:
            continue
        line = first_line + token.map[0]
        directive = DIRECTIVE.match(token.info.strip())
        if directive is None:
            if token.info.strip().split(" ")[0].lower() in PYTHON_LANGUAGES:
                cells.append(BookCell(page, line + 1, token.content))
            continue
        options, body, offset = _split_options(token.content)
        if directive["name"] == "code-cell":
            cells.append(BookCell(page, line + 1 + offset, body))
        elif directive["name"] != "quiz" and not is_exempt(directive["name"], directive["argument"], options):
            cells += code_blocks(page, body, line + 1 + offset)
    return cells


def book_cells() -> list[BookCell]:
    return [cell for page in sorted(BOOK.glob("*.md")) for cell in code_blocks(page.name, page.read_text("utf-8"))]


def solution_sources(lesson: str) -> dict[str, str]:
    """``{exercise name: its solution cell's source}`` in the lesson's solutions notebook."""
    notebook = json.loads((ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text("utf-8"))
    sources = {}
    for cell in notebook["cells"]:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and nbgrader.get("solution") and nbgrader.get("grade_id") in EXERCISES:
            sources[nbgrader["grade_id"]] = "".join(cell["source"])
    return sources


def solution_units() -> list[tuple[str, CodeUnit]]:
    """``(exercise, unit)`` for every function and class of every exercise's solution."""
    return [
        (name, unit)
        for lesson in LESSONS
        for name, source in solution_sources(lesson).items()
        for unit in code_units(source, top_level_only=True)
    ]


def copies() -> list[str]:
    """Every book cell that holds a copy of a solution, as ``page:line: ...`` lines."""
    found = []
    cells = [(cell, code_units(cell.source)) for cell in book_cells()]
    for exercise, solution in solution_units():
        for cell, units in cells:
            match = most_alike(solution, units, at_least=COPY_RATIO)
            if match is not None:
                unit, ratio = match
                found.append(
                    f"book/{cell.page}:{cell.line + unit.line - 1}: {unit.name} is a copy of the solution of "
                    f"exercise {exercise!r} ({solution.name}; likeness {ratio:.2f})"
                )
    return found


def test_every_exercise_has_a_solution_to_compare():
    names = {name for lesson in LESSONS for name in solution_sources(lesson)}
    assert names == set(EXERCISES)


def test_the_book_has_code_cells():
    pages = {cell.page for cell in book_cells()}
    assert {f"{lesson}.md" for lesson in LESSONS} <= pages


def test_a_renamed_copy_counts_and_a_reference_call_does_not():
    solution = code_units(solution_sources("02-attention")["numpy_attention"], top_level_only=True)[-1]
    renamed = """
def attend(queries, keys, values, hide=None):
    s = queries @ np.swapaxes(keys, -1, -2) / np.sqrt(queries.shape[-1]).astype(queries.dtype)
    if hide is not None:
        s = np.where(hide, s, -np.inf).astype(queries.dtype)
    w = numpy_softmax(s).astype(queries.dtype)  # the weights
    return w @ values, w
"""
    reference_call = "out, weights = tfcourse.np.attention(q, k, v, mask)\nprint(out.shape, weights.shape)\n"
    assert most_alike(solution, code_units(renamed), at_least=COPY_RATIO) is not None
    assert most_alike(solution, code_units(reference_call), at_least=COPY_RATIO) is None


def test_after_you_have_tried_blocks_are_exempt():
    page = """
```{code-cell} ipython3
x = 1
```

````{admonition} After you have tried: one way to write it
:class: dropdown
```python
def exempt(): ...
```
````

````{admonition} Solution
:class: dropdown
```python
def shown(): ...
```
````
"""
    assert [cell.source.strip() for cell in code_blocks("page.md", page)] == ["x = 1", "def shown(): ..."]
    assert [cell.line for cell in code_blocks("page.md", page)] == [3, 16]


def test_no_book_cell_holds_an_exercise_solution():
    found = copies()
    assert not found, (
        "book cells hold exercise solutions as runnable code; show the idea with tfcourse, with other code, "
        "or in an 'After you have tried' dropdown admonition:\n  " + "\n  ".join(found)
    )
