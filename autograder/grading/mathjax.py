"""Maths that typesets offline: the MathJax the book bundles, copied beside the pages that need it.

The book ships MathJax 3 (``book/_static/mathjax``: ``tex-chtml-full.js`` and its fonts, found
relative to the script). :func:`copy_mathjax` copies it into a folder, with a ``config.js``
that makes ``$...$`` and ``$$...$$`` maths (as notebooks write it) and ``\\(...\\)`` typeset and
leaves ``<pre>``, ``<code>`` and anything of class ``tex2jax_ignore`` alone; :func:`mathjax_tags`
are the two ``<script>`` tags a page loads them with, from a relative URL: no page that
uses them fetches anything from the internet. A page that travels alone (a feedback page,
which nbgrader's exchange delivers without the files beside it) carries MathJax inline
instead (:func:`inline_mathjax_tags`), with the fonts looked for beside it
(:func:`font_files`): where they are missing, the maths is still typeset, in the browser's
fonts.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[2] / "book" / "_static" / "mathjax"
SCRIPT = "tex-chtml-full.js"
CONFIG = "config.js"
FONTS = "output/chtml/fonts/woff-v2"
CONFIG_SOURCE = r"""window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true},
  options: {ignoreHtmlClass: 'tex2jax_ignore'}%s
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
    (target / CONFIG).write_text(CONFIG_SOURCE % "")
    return target


def mathjax_tags(url: str) -> str:
    """The ``<script>`` tags that configure and load the copy at ``url`` (relative to the page, or absolute)."""
    base = html.escape(url.rstrip("/"), quote=True)
    return f'<script src="{base}/{CONFIG}"></script>\n<script defer src="{base}/{SCRIPT}"></script>'


def inline_mathjax_tags(folder: str = "mathjax") -> str:
    """``<script>`` tags that hold the configuration and MathJax itself, the fonts taken from
    ``folder/output/chtml/fonts/woff-v2`` beside the page."""
    script = (BUNDLED / SCRIPT).read_text(encoding="utf-8")
    if "</script" in script.lower():
        raise MathJaxMissing(f"{BUNDLED / SCRIPT} cannot be inlined into a page: it holds '</script'")
    fonts = f",\n  chtml: {{fontURL: '{folder}/{FONTS}'}}"
    return f"<script>{CONFIG_SOURCE % fonts}</script>\n<script>{script}</script>"


def font_files(folder: str = "mathjax") -> dict[str, bytes]:
    """MathJax's fonts by their path below a page that :func:`inline_mathjax_tags` made."""
    return {f"{folder}/{FONTS}/{font.name}": font.read_bytes() for font in sorted((BUNDLED / FONTS).glob("*.woff"))}
