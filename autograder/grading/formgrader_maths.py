"""Formgrader's maths offline: a Jupyter server extension that makes its pages load MathJax from the server.

nbgrader's formgrade template calls nbconvert's ``mathjax()`` macro without a URL, so every
submission page asks a CDN for MathJax 2.7; offline, or behind a firewall, the instructor grades
raw ``$...$``. Formgrader's own script drives MathJax 2's API (``MathJax.Hub.Startup.signal``),
so the book's MathJax 3 cannot stand in. ``jupyter_server_mathjax`` (a Jupyter project, installed
with the grading extra) serves MathJax 2.7 from the Jupyter server itself, at
``{base_url}static/jupyter_server_mathjax/``. This extension adds an output transform to the
server that, in the HTML formgrader sends, replaces the CDN's ``<script>`` tag by one that loads
MathJax from there (a transform, rather than a change to formgrader's exporter, works whatever
order the server loads its extensions in and whichever event loop a hub's single-user server runs).

``scripts/setup.sh grading`` (and ``hub``, ``dev``) enables it for the environment's Jupyter servers,
with ``etc/jupyter/jupyter_server_config.d/tfcourse-formgrader-maths.json`` below ``sys.prefix``.
"""

from __future__ import annotations

import re
from typing import Any

from jupyter_server.utils import url_path_join
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform

from autograder.grading.feedback import CDN_MATHJAX

MATHJAX_PATH = "static/jupyter_server_mathjax/MathJax.js"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration jupyter_server_mathjax serves by default
CDN_TAG = re.compile(CDN_MATHJAX.pattern.encode(), re.IGNORECASE)  # feedback's CDN tag, in a response's bytes


def local_mathjax_tag(base_url: str) -> bytes:
    """The ``<script>`` tag that loads the server's MathJax 2 below ``base_url``."""
    return f'<script src="{url_path_join(base_url or "/", MATHJAX_PATH)}?config={MATHJAX_CONFIG}"></script>'.encode()


def with_local_mathjax(page: bytes, base_url: str) -> bytes:
    """``page`` with its first CDN MathJax tag replaced by :func:`local_mathjax_tag`."""
    return CDN_TAG.sub(lambda _: local_mathjax_tag(base_url), page, count=1)


def local_mathjax_transform(base_url: str) -> type[OutputTransform]:
    """An output transform for a server at ``base_url``: whole HTML responses below ``{base_url}formgrader/``
    load MathJax from the server."""
    formgrader = url_path_join(base_url or "/", "formgrader/")

    class LocalMathJax(OutputTransform):
        def __init__(self, request: HTTPServerRequest) -> None:
            self._applies = request.path.startswith(formgrader)

        def transform_first_chunk(self, status_code: int, headers: HTTPHeaders, chunk: bytes,
                                  finishing: bool) -> tuple[int, HTTPHeaders, bytes]:
            if self._applies and finishing and headers.get("Content-Type", "").startswith("text/html"):
                chunk = with_local_mathjax(chunk, base_url)
                if "Content-Length" in headers:
                    headers["Content-Length"] = str(len(chunk))
            return status_code, headers, chunk

    return LocalMathJax


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "autograder.grading.formgrader_maths"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    serverapp.web_app.add_transform(local_mathjax_transform(serverapp.base_url))
