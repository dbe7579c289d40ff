"""The architecture holds: import-linter's contracts (pyproject.toml), and the harness's allowlist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS_MAY_IMPORT = {"torch", "numpy", "autograder"}  # with the standard library


def test_the_import_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is missing: install the dev extra (bash scripts/setup.sh dev)")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_harness_imports_only_the_standard_library_torch_numpy_and_itself():
    graph = grimp.build_graph("autograder", include_external_packages=True)
    outside = set()
    for module in graph.find_descendants("autograder.harness") | {"autograder.harness"}:
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if imported == "autograder.harness" or imported.startswith("autograder.harness."):
                continue
            if top in sys.stdlib_module_names or (top in HARNESS_MAY_IMPORT and top != "autograder"):
                continue
            outside.add(f"{module} imports {imported}")
    assert not outside, sorted(outside)
