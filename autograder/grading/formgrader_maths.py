"""Formgrader's maths offline: a Jupyter server extension that makes its pages load MathJax from the server.

nbgrader's formgrade template calls nbconvert's ``mathjax()`` macro without a URL, so every
submission page asks a CDN for MathJax 2.7; offline, or behind a firewall, the instructor grades
raw ``$...$``. Formgrader's own script drives MathJax 2's API (``MathJax.Hub.Startup.signal``),
so the book's MathJax 3 cannot stand in. ``jupyter_server_mathjax`` (a Jupyter project, installed
with the grading extra) serves MathJax 2.7 from the Jupyter server itself, at
``{base_url}static/jupyter_server_mathjax/``; this extension renders formgrader's pages with
:class:`LocalMathJaxExporter`, which loads it from there instead of the CDN.

``scripts/setup.sh grading`` (and ``hub``, ``dev``) enables it for the environment's Jupyter servers,
with ``etc/jupyter/jupyter_server_config.d/tfcourse-formgrader-maths.json`` below ``sys.prefix``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from nbconvert.exporters import HTMLExporter
from tornado.ioloop import IOLoop

from autograder.grading.feedback import CDN_MATHJAX

MATHJAX_PATH = "static/jupyter_server_mathjax/MathJax.js"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration jupyter_server_mathjax serves by default
EXPORTER_SETTING = "nbgrader_exporter"  # the tornado setting formgrader renders submissions with


def local_mathjax_tag(base_url: str) -> str:
    """The ``<script>`` tag that loads the server's MathJax 2 below ``base_url``."""
    return f'<script src="{url_path_join(base_url or "/", MATHJAX_PATH)}?config={MATHJAX_CONFIG}"></script>'


class LocalMathJaxExporter(HTMLExporter):
    """The HTML exporter formgrader is configured with, whose pages load MathJax from the Jupyter server."""

    def from_notebook_node(self, nb: Any, resources: dict | None = None, **kw: Any) -> tuple[str, dict]:
        page, resources = super().from_notebook_node(nb, resources, **kw)
        tag = local_mathjax_tag(resources.get("base_url", "/"))
        return CDN_MATHJAX.sub(lambda _: tag, page, count=1), resources


def use_local_mathjax(settings: dict) -> None:
    """Replace formgrader's exporter in the server's ``settings`` by a :class:`LocalMathJaxExporter` with its
    configuration (template, template folders); nothing when formgrader is not loaded."""
    exporter = settings.get(EXPORTER_SETTING)
    if isinstance(exporter, HTMLExporter) and not isinstance(exporter, LocalMathJaxExporter):
        settings[EXPORTER_SETTING] = LocalMathJaxExporter(config=exporter.config)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "autograder.grading.formgrader_maths"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Extensions load in name order, this one before nbgrader's: the exporter is replaced once the server's
    loop starts, when every extension has set its settings."""
    IOLoop.current().add_callback(use_local_mathjax, serverapp.web_app.settings)
