"""Feedback pages that show a learner's answers without running anything in them.

nbgrader's ``generate_feedback`` turns each autograded notebook into an HTML page that the
instructor and the learner open in a browser. The learner's markdown answers are rendered
into that page, and nbgrader's feedback template passes their HTML through untouched
(nbconvert's ``HTMLExporter.sanitize_html`` cleans outputs, but the feedback template
renders markdown cells itself). :class:`SafeFeedbackExporter` is nbconvert's HTML exporter
with every piece of rendered markdown cleaned by ``nh3`` (the Rust ``ammonia`` sanitiser):
no script, style, frame or form, no event handler, and no URL but ``http``, ``https``,
``mailto`` and the like survives, while headings, lists, tables, links, images, code and the
maths (left as text for MathJax) render as before. ``tfcourse feedback`` and the course's
``nbgrader_config.py`` select it as ``GenerateFeedback.exporter_class``
(:data:`autograder.grading.course.FEEDBACK_EXPORTER`).

nbgrader's feedback template loads MathJax 2 from a CDN (its ``mathjax()`` macro ignores
``HTMLExporter.mathjax_url``), so offline the maths stays raw ``$$``. The exporter puts the
MathJax the book bundles into the page instead, and its fonts beside the page
(:mod:`autograder.grading.mathjax`): the page typesets its maths with no network, also where the
exchange delivers it alone.
"""

from __future__ import annotations

import re
from typing import Any

import nh3
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from traitlets import default

from autograder.grading.mathjax import font_files, inline_mathjax_tags

CDN_MATHJAX = re.compile(r'<script src="https://[^"]*mathjax[^"]*">\s*</script>', re.IGNORECASE)
ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "*": {"class", "id"}}  # the anchors and classes nbconvert gives headings


def sanitized(html: str) -> str:
    """``html`` with everything that could run, load or restyle the page removed."""
    return nh3.clean(html, attributes=ATTRIBUTES)


class SafeFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter, with rendered markdown sanitised and outputs sanitised by nbconvert."""

    @default("sanitize_html")
    def _sanitize_html_default(self) -> bool:
        return True

    def from_notebook_node(self, nb: Any, resources: dict | None = None, **kw: Any) -> tuple[str, dict]:
        page, resources = super().from_notebook_node(nb, resources, **kw)
        resources.setdefault("outputs", {}).update(font_files())
        return offline_maths(page), resources

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        return sanitized(super().markdown2html(context, source))


def offline_maths(page: str) -> str:
    """``page`` with MathJax loaded from the page itself instead of a CDN."""
    return CDN_MATHJAX.sub(lambda _: inline_mathjax_tags(), page, count=1)
