"""Every exercise is linked both ways: its lesson's page teaches it in a section labelled
``(teach-NAME)=`` that the page's Exercises section refers to, and the exercise's task cell
(in the solutions and in the learners' notebook) links to that section. Fast: no build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from autograder.headers import BOOK_URL, book_link_line, teaching_anchor
from autograder.registry import EXERCISES

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(EXERCISES)


def page(lesson: str) -> str:
    return (ROOT / "book" / f"{lesson}.md").read_text(encoding="utf-8")


def exercises_section(text: str) -> str:
    """The page's ``## Exercises`` section, up to the next heading of level 1 or 2."""
    match = re.search(r"^## Exercises\s*$(?P<body>.*?)(?=^#{1,2} |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    return match["body"] if match else ""


def task_cell(notebook: Path, name: str) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    grade_ids = [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in cells]
    (source,) = ["".join(cell["source"]) for cell, grade_id in zip(cells, grade_ids) if grade_id == f"task_{name}"]
    return source


@pytest.mark.parametrize("name", NAMES)
def test_the_lesson_teaches_the_exercise_in_a_labelled_section(name: str):
    lesson = EXERCISES[name].lesson
    labels = re.findall(rf"^\(teach-{re.escape(name)}\)=\s*\n(?:\([\w-]+\)=\s*\n)*(#+ .*)$", page(lesson), re.MULTILINE)
    assert len(labels) == 1, f"book/{lesson}.md needs one line (teach-{name})= right before a heading, found {labels}"


@pytest.mark.parametrize("name", NAMES)
def test_the_exercises_section_links_to_the_teaching_section(name: str):
    lesson = EXERCISES[name].lesson
    reference = f"{{ref}}`teach-{name}`"
    assert reference in exercises_section(page(lesson)), f"book/{lesson}.md's ## Exercises does not say {reference}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_the_task_cell_links_to_the_teaching_section(folder: str, name: str):
    lesson = EXERCISES[name].lesson
    notebook = ROOT / folder / lesson / f"{lesson}.ipynb"
    assert book_link_line(EXERCISES[name]) in task_cell(notebook, name), (
        f"{notebook.relative_to(ROOT)}: task_{name} lacks its book link: run python -m autograder.headers, "
        f"then nbgrader generate_assignment {lesson} --force"
    )


def test_the_links_point_at_the_published_book_and_at_sphinx_anchors():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["html"]["baseurl"] == BOOK_URL
    make_id = pytest.importorskip("docutils.nodes").make_id
    for name in NAMES:
        assert teaching_anchor(name) == make_id(f"teach-{name}")
