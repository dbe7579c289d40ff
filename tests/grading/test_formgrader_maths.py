"""Formgrader's submission pages load MathJax from the Jupyter server, never from a CDN."""

from __future__ import annotations

from pathlib import Path

import jupyter_server_mathjax
import pytest
from nbconvert.exporters import HTMLExporter
from nbgrader.server_extensions.formgrader import handlers
from traitlets.config import Config

from autograder.grading.formgrader_maths import MATHJAX_PATH, LocalMathJaxExporter, use_local_mathjax
from tests.support.grading_course import LESSON
from tests.support.notebooks import ROOT


def formgrader_exporter() -> HTMLExporter:
    """The exporter nbgrader's formgrader makes for its submission pages (``FormgradeExtension``)."""
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    return HTMLExporter(config=config)


def submission_page(exporter: HTMLExporter, notebook: Path, base_url: str) -> str:
    resources = {"assignment_id": LESSON, "notebook_id": LESSON, "submission_id": "abc", "index": 0, "total": 1,
                 "base_url": base_url, "student": "ada", "last_name": None, "first_name": None,
                 "notebook_path": f"autograded/ada/{LESSON}/{LESSON}.ipynb"}
    return exporter.from_filename(str(notebook), resources=resources)[0]


@pytest.fixture(scope="module")
def notebook() -> Path:
    """A notebook with maths in its markdown: the learners' notebook of the grading course's lesson."""
    return ROOT / "exercises" / LESSON / f"{LESSON}.ipynb"


def test_nbgraders_own_formgrader_page_loads_mathjax_from_a_cdn(notebook):
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" in submission_page(formgrader_exporter(), notebook, "/")


@pytest.mark.parametrize("base_url", ["/", "/user/teacher/"])
def test_the_page_loads_the_servers_mathjax_below_its_base_url(notebook, base_url):
    settings = {"nbgrader_exporter": formgrader_exporter()}
    use_local_mathjax(settings)
    page = submission_page(settings["nbgrader_exporter"], notebook, base_url)
    assert isinstance(settings["nbgrader_exporter"], LocalMathJaxExporter)
    assert "cdnjs" not in page and "https://" not in page.split("<body")[0]
    assert f'<script src="{base_url}{MATHJAX_PATH}?config=' in page
    assert page.count("<script src=") == submission_page(formgrader_exporter(), notebook, base_url).count("<script src=")
    assert "formgrader/static/js/formgrade.js" in page  # still formgrader's template, with its own script


def test_the_server_has_the_mathjax_the_page_asks_for():
    served = Path(jupyter_server_mathjax.__file__).parent / "static"
    assert (served / "MathJax.js").is_file() and (served / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()


def test_nothing_changes_where_formgrader_is_not_loaded():
    settings: dict = {}
    use_local_mathjax(settings)
    assert settings == {}
