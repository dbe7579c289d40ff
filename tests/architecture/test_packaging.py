"""The install extras cover what the code needs: the README's main command installs `.[book]` only."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires

from packaging.requirements import Requirement

from tests.support.notebooks import ROOT

# A code cell's body, after its ``:option: value`` lines.
CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*(.*?)```", re.S)
# The kernel the book's pages run in provides IPython.
KERNEL_MODULES = {"IPython"}


def imported_modules(source: str) -> set[str]:
    """Top-level names of the absolute imports in a code cell (magics and shell lines left out)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def distributions_for(extra: str) -> set[str]:
    """The distributions tfcourse names for a plain install plus ``extra``, normalised."""
    names = set()
    for line in requires("tfcourse") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            names.add(requirement.name.lower().replace("_", "-"))
    return names


def test_the_book_extra_installs_every_package_the_book_imports():
    modules = set().union(*(imported_modules(cell) for page in (ROOT / "book").glob("*.md")
                            for cell in CODE_CELL.findall(page.read_text())))
    third_party = modules - set(sys.stdlib_module_names) - KERNEL_MODULES - {"tfcourse"}
    provided = packages_distributions()
    needed = {module: {d.lower().replace("_", "-") for d in provided.get(module, [module])} for module in third_party}
    declared = distributions_for("book")
    missing = {module: sorted(dists) for module, dists in needed.items() if not dists & declared}
    assert not missing, f"the book imports these, which `pip install -e .[book]` does not install: {missing}"
