"""Formgrader's submission pages load MathJax from the Jupyter server, never from a CDN."""

from __future__ import annotations

from pathlib import Path

import jupyter_server_mathjax
import pytest
from nbconvert.exporters import HTMLExporter
from nbgrader.server_extensions.formgrader import handlers
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from traitlets.config import Config

from autograder.grading.formgrader_maths import MATHJAX_PATH, local_mathjax_transform
from tests.support.grading_course import LESSON
from tests.support.notebooks import ROOT

NOTEBOOK = ROOT / "exercises" / LESSON / f"{LESSON}.ipynb"  # a notebook with maths in its markdown


def formgrader_page(base_url: str) -> bytes:
    """A submission page as nbgrader's formgrader renders it (its ``FormgradeExtension``'s exporter)."""
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": LESSON, "notebook_id": LESSON, "submission_id": "abc", "index": 0, "total": 1,
                 "base_url": base_url, "student": "ada", "last_name": None, "first_name": None,
                 "notebook_path": f"autograded/ada/{LESSON}/{LESSON}.ipynb"}
    return HTMLExporter(config=config).from_filename(str(NOTEBOOK), resources=resources)[0].encode()


def served(base_url: str, path: str, page: bytes, content_type: str = "text/html; charset=UTF-8",
           finishing: bool = True) -> tuple[HTTPHeaders, bytes]:
    """What the server sends for ``page`` at ``path`` once the extension's transform has seen it."""
    request = HTTPServerRequest(start_line=RequestStartLine("GET", path, "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "127.0.0.1"}))
    transform = local_mathjax_transform(base_url)(request)
    headers = HTTPHeaders({"Content-Type": content_type, "Content-Length": str(len(page))})
    _, headers, chunk = transform.transform_first_chunk(200, headers, page, finishing)
    return headers, chunk


@pytest.fixture(scope="module")
def pages() -> dict[str, bytes]:
    return {base_url: formgrader_page(base_url) for base_url in ("/", "/user/teacher/")}


def test_nbgraders_own_formgrader_page_loads_mathjax_from_a_cdn(pages):
    assert b"cdnjs.cloudflare.com/ajax/libs/mathjax" in pages["/"]


@pytest.mark.parametrize("base_url", ["/", "/user/teacher/"])
def test_a_submission_page_loads_the_servers_mathjax_below_its_base_url(pages, base_url):
    headers, page = served(base_url, f"{base_url}formgrader/submissions/abc/", pages[base_url])
    head = page.split(b"<body")[0]
    assert b"https://" not in head, "the page still asks another host for something"
    assert f'<script src="{base_url}{MATHJAX_PATH}?config='.encode() in head
    assert head.count(b"<script src=") == pages[base_url].split(b"<body")[0].count(b"<script src=")
    assert b"formgrader/static/js/formgrade.js" in head  # formgrader's own page, with its script
    assert headers["Content-Length"] == str(len(page))


@pytest.mark.parametrize("path, content_type, finishing", [
    ("/lab/tree/notes.html", "text/html", True),  # not formgrader
    ("/formgrader/submissions/abc/", "application/json", True),
    ("/formgrader/submissions/abc/", "text/html", False),  # streamed: left alone
])
def test_other_responses_pass_unchanged(pages, path, content_type, finishing):
    assert served("/", path, pages["/"], content_type, finishing)[1] == pages["/"]


def test_the_server_has_the_mathjax_the_page_asks_for():
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    assert (static / "MathJax.js").is_file() and (static / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()
