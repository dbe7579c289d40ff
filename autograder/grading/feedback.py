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
"""

from __future__ import annotations

from typing import Any

import nh3
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from traitlets import default

ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "*": {"class", "id"}}  # the anchors and classes nbconvert gives headings


def sanitized(html: str) -> str:
    """``html`` with everything that could run, load or restyle the page removed."""
    return nh3.clean(html, attributes=ATTRIBUTES)


class SafeFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter, with rendered markdown sanitised and outputs sanitised by nbconvert."""

    @default("sanitize_html")
    def _sanitize_html_default(self) -> bool:
        return True

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        return sanitized(super().markdown2html(context, source))
