"""What the grading side leaves out of its imports: the grammars of jsonschema's "iri" formats.

nbformat validates notebooks with jsonschema, whose import compiles some forty Lark grammars
of ``rfc3987_syntax`` (1.5 to 6 s, the largest single cost of starting ``tfcourse grade``
or ``tfcourse check``) for the string formats ``iri`` and ``iri-reference``. No notebook
schema uses a format, and nbformat validates without a format checker, so the grading side
marks that module absent before nbformat is imported: jsonschema then leaves those two
format checks out, and every notebook validates exactly as before.
"""

from __future__ import annotations

import sys

IRI_GRAMMARS = "rfc3987_syntax"


def skip_iri_grammars() -> None:
    """Make ``import rfc3987_syntax`` fail (jsonschema's optional import) unless something already loaded it."""
    sys.modules.setdefault(IRI_GRAMMARS, None)  # type: ignore[arg-type]
