"""Maths that typesets offline: the MathJax the book bundles, copied beside the pages that need it.

The book ships MathJax 3 (``book/_static/mathjax``: ``tex-chtml-full.js`` and its fonts, found
relative to the script). :func:`copy_mathjax` copies it into a folder, with a ``config.js``
that makes ``$...$`` and ``$$...$$`` maths (as notebooks write it) and ``\\(...\\)`` typeset and
leaves ``<pre>``, ``<code>`` and anything of class ``tex2jax_ignore`` alone; :func:`mathjax_tags`
are the two ``<script>`` tags a page loads them with, from a relative URL: no page that
uses them fetches anything from the internet.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[2] / "book" / "_static" / "mathjax"
SCRIPT = "tex-chtml-full.js"
CONFIG = "config.js"
CONFIG_SOURCE = r"""window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true},
  options: {ignoreHtmlClass: 'tex2jax_ignore'}
};
"""


class MathJaxMissing(OSError):
    """The bundled MathJax is not where it should be (a copy of the course without ``book/``)."""


def copy_mathjax(folder: Path, name: str = "mathjax") -> Path:
    """Copy MathJax and its configuration into ``folder/name``; that folder."""
    if not (BUNDLED / SCRIPT).is_file():
        raise MathJaxMissing(f"MathJax is not bundled at {BUNDLED}: restore book/_static/mathjax from the repository")
    target = folder / name
    shutil.copytree(BUNDLED, target, dirs_exist_ok=True)
    (target / CONFIG).write_text(CONFIG_SOURCE)
    return target


def mathjax_tags(url: str) -> str:
    """The ``<script>`` tags that configure and load the copy at ``url`` (relative to the page, or absolute)."""
    base = html.escape(url.rstrip("/"), quote=True)
    return f'<script src="{base}/{CONFIG}"></script>\n<script defer src="{base}/{SCRIPT}"></script>'
