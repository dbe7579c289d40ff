"""Sphinx extension for the course book.

* Notebooks executed while the book builds inherit ``TFCOURSE_STATIC_FIGURES=1``, so
  figures are drawn statically (see :mod:`tfcourse.interactive`), and
  ``OMP_NUM_THREADS=1`` unless set: the pages train tiny models, for which one thread is
  as fast as several, and much faster than several competing for a busy machine's cores.
* ``{exercise-links} LESSON_ID`` renders the links to a lesson's learner notebook
  ``exercises/LESSON_ID/LESSON_ID.ipynb``: a download of the file itself (copied into the
  site, so a missing notebook fails the build), and the same notebook opened in Google
  Colab, on Binder, and on the repository's site (``repository.url`` in ``_config.yml``).
* A bullet that starts with ``[ ]`` becomes a check box the reader can tick (the
  self-assessment checklists). MyST's ``tasklist`` extension does this for plain Markdown
  pages but fails on Markdown notebooks, whose block-level pre-parse has no inline tokens.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from tfcourse.interactive import STATIC_FIGURES_ENV

GITHUB_REPOSITORY = re.compile(r"^https://github\.com/(?P<slug>[^/]+/[^/]+?)/?$")


def exercise_notebook(lesson_id: str) -> PurePosixPath:
    """Path of a lesson's learner notebook, relative to the repository root."""
    return PurePosixPath("exercises", lesson_id, f"{lesson_id}.ipynb")


def launch_links(repository_url: str, branch: str, notebook: PurePosixPath) -> dict[str, str]:
    """``{label: url}`` opening ``notebook`` (a path in the repository) in Colab, on Binder and on GitHub."""
    match = GITHUB_REPOSITORY.match(repository_url)
    if match is None:
        raise ValueError(f"repository.url must be https://github.com/OWNER/REPO, got {repository_url!r}")
    slug = match["slug"]
    return {
        "Open in Colab": f"https://colab.research.google.com/github/{slug}/blob/{branch}/{notebook}",
        "Launch on Binder": f"https://mybinder.org/v2/gh/{slug}/{branch}?labpath={notebook}",
        "View on GitHub": f"https://github.com/{slug}/blob/{branch}/{notebook}",
    }


class ExerciseLinks(SphinxDirective):
    """``{exercise-links} LESSON_ID``: download and launch links for a lesson's exercises."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        lesson_id = self.arguments[0]
        notebook = exercise_notebook(lesson_id)
        theme = self.config.html_theme_options
        links = launch_links(theme["repository_url"], theme.get("repository_branch", "main"), notebook)
        download = addnodes.download_reference(
            "",
            "",
            nodes.literal(text=notebook.name),
            reftarget=f"/{notebook}",
            refdoc=self.env.docname,
            refexplicit=True,
        )
        paragraph = nodes.paragraph("", "", nodes.Text("Download "), download)
        for label, url in links.items():
            paragraph += [nodes.Text(" · "), nodes.reference(label, label, refuri=url)]
        return [nodes.container("", paragraph, classes=["exercise-links"])]


CHECKBOX_MARKER = "[ ] "


def add_checkboxes(app: Sphinx, doctree: nodes.document) -> None:
    """Turn every bullet whose paragraph starts with ``[ ]`` into a check box and its label."""
    for item in doctree.findall(nodes.list_item):
        paragraph = item.next_node(nodes.paragraph)
        if paragraph is None or paragraph.parent is not item or not isinstance(paragraph[0], nodes.Text):
            continue
        text = paragraph[0].astext()
        if not text.startswith(CHECKBOX_MARKER):
            continue
        paragraph[0] = nodes.Text(text[len(CHECKBOX_MARKER) :])
        paragraph.insert(0, nodes.raw("", '<input type="checkbox" class="task-list-item-checkbox"> ', format="html"))
        item["classes"].append("task-list-item")
        if "contains-task-list" not in item.parent["classes"]:
            item.parent["classes"].append("contains-task-list")


def setup(app: Sphinx) -> dict:
    os.environ[STATIC_FIGURES_ENV] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    app.add_directive("exercise-links", ExerciseLinks)
    app.connect("doctree-read", add_checkboxes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
