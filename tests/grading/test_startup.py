"""The grading side starts without compiling jsonschema's "iri" grammars, and validates notebooks as before; its
exercise specifications import no plotting library."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import autograder.grading, nbformat, sys
notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(notebook)
notebook.cells[0]["outputs"] = "not a list"
try:
    nbformat.validate(notebook)
    print("invalid notebook accepted")
except nbformat.ValidationError:
    print("invalid notebook refused")
print("grammars loaded" if sys.modules.get("rfc3987_syntax") else "grammars skipped")
"""


def test_nbformat_validates_without_the_iri_grammars():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["invalid notebook refused", "grammars skipped"]


def test_the_exercise_specifications_import_no_plotting_library():
    """Grading imports every lesson's specifications, and through them the reference's modules: none may
    import matplotlib (a second or more of every grading command's start)."""
    probe = "import sys, autograder.registry\nprint(sorted({'matplotlib', 'nbformat', 'nbgrader'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
