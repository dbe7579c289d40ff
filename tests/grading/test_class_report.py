"""``tfcourse report``: a graded class's pass rates, scores and ranked mistakes, safe with hostile
submissions, with maths that typesets offline; and feedback pages that load no MathJax from the internet."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from PIL import Image

from autograder.exercises.attention import ATTENTION_SCORES
from autograder.grading.class_report import ANONYMOUS, anonymised, figure_name
from autograder.grading.course import Course
from autograder.grading.gradebook import Journal, NotebookGrades
from autograder.grading.mathjax import FONTS
from autograder.grading.mistakes import NOT_DEFINED
from tests.support.browser import OfflineView, open_offline
from tests.support.grading_course import (
    LESSON,
    released_course,
    solution_ids,
    solved,
    submit,
    tfcourse,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "_build" / "screenshots"
HOSTILE = "<script>window.injected = 1</script><img src=x onerror=\"window.injected = 2\">"
WRONG = {
    "no sqrt": ("attention_scores", "def attention_scores(q, k):\n    return q @ k.transpose(-2, -1)"),
    "over d_k": ("attention_scores", "def attention_scores(q, k):\n    return q @ k.transpose(-2, -1) / q.shape[-1]"),
    "no minus": ("attention_entropy", ("def attention_entropy(weights):\n"
                                       "    safe = torch.where(weights > 0, weights, torch.ones_like(weights))\n"
                                       "    return (weights * safe.log()).sum(-1)")),
    "renamed": ("attention_entropy", "def entropy(weights):\n    return weights"),
    "hostile": ("attention_entropy", f"def attention_entropy(weights):\n    raise ValueError({HOSTILE!r} + ' mallory')"),
}
CLASS = {"ada": [], "bo": ["no sqrt"], "cy": ["no sqrt"], "di": ["no sqrt"], "ed": ["over d_k", "no minus"],
         "fay": ["renamed"], "mallory": ["hostile"]}


def _notebook(course: Path, mistakes: list[str]):
    notebook = solved(course, solution_ids(course))
    for mistake in mistakes:
        grade_id, source = WRONG[mistake]
        next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id).source = source
    return notebook


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> Path:
    """A class of seven graded by ``tfcourse grade``: one right, the rest with known wrong answers."""
    course = released_course(tmp_path_factory)
    for student, mistakes in CLASS.items():
        submit(course, student, _notebook(course, mistakes))
    graded = tfcourse("grade", LESSON, "--course", course, "--device", "cpu")
    assert graded.returncode == 0, graded.stderr[-3000:]
    with Gradebook(Course(course).db_url) as gradebook:  # a roster's names are the students' to choose
        gradebook.update_or_create_student("ed", first_name=HOSTILE, last_name="ed-the-student")
    return course


@pytest.fixture(scope="module")
def report(graded_class: Path) -> Path:
    output = graded_class.parent / "report"
    made = tfcourse("report", LESSON, "--course", graded_class, "--output", output)
    assert made.returncode == 0, made.stderr[-3000:]
    return output


def _section(page: str, exercise: str) -> str:
    return page.split(f"<h3>{exercise}</h3>", 1)[1].split("<h3>", 1)[0]


def _ranked(page: str, exercise: str) -> list[tuple[str, int]]:
    rows = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td>", _section(page, exercise))
    return [(html.unescape(name), int(count)) for name, count in rows]


@pytest.mark.slow
def test_the_journal_names_each_failed_checks_mistake(graded_class):
    entries = Journal(Course(graded_class).journal_path(LESSON)).entries()
    assert entries["ada"].notebooks[0].mistakes == {}
    assert entries["bo"].notebooks[0].mistakes["attention_scores"] == ["no sqrt(d_k) scaling"]
    assert entries["mallory"].notebooks[0].mistakes == {"attention_entropy": ["raises an error"]}
    assert entries["fay"].notebooks[0].mistakes == {"attention_entropy": [NOT_DEFINED]}


def test_journal_lines_written_before_mistakes_were_recorded_still_read():
    line = {"name": "n", "score": {"student": "s", "assignment": "a", "score": 0, "max_score": 1, "checks": []},
            "grades": {}, "comments": {}}
    assert NotebookGrades.from_json(line).mistakes == {}


@pytest.mark.slow
def test_the_report_ranks_mistakes_and_gives_pass_rates(report):
    page = (report / "index.html").read_text()
    assert _ranked(page, "attention_scores") == [("no sqrt(d_k) scaling", 3), ("divided by d_k", 1)]
    assert _ranked(page, "attention_entropy") == [("missing minus sign", 1), (NOT_DEFINED, 1),
                                                  ("raises an error", 1)]
    assert "<h3>softmax</h3><p>Every student passed.</p>" in page
    points = f"{ATTENTION_SCORES.points:g}"
    assert f"<td>attention_scores</td><td>43% (3/7)</td><td>0/{points}: 4, {points}/{points}: 3</td>" in page
    assert "<td>attention_entropy</td><td>57% (4/7)</td>" in page
    assert "7 graded submissions" in page


@pytest.mark.slow
def test_the_reports_figures_exist_and_decode(report):
    names = ["pass-rates.png", "scores.png", figure_name("attention_scores"), figure_name("attention_entropy")]
    for name in names:
        with Image.open(report / name) as image:
            image.verify()
        assert f'src="{name}"' in (report / "index.html").read_text()
    assert not (report / figure_name("softmax")).exists()


@pytest.mark.slow
def test_a_hostile_output_cannot_inject_html_and_examples_are_anonymous(report):
    page = (report / "index.html").read_text()
    assert HOSTILE not in page and "<img src=x" not in page and "mallory" not in page
    assert "ed-the-student" not in page
    assert html.escape(HOSTILE) in _section(page, "attention_entropy")
    assert len(re.findall(r"<script\b", page)) == 2  # MathJax's configuration and MathJax
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_anonymised_keeps_the_explaining_lines_and_drops_the_id_and_the_table():
    message = "f: 0 of 2 cases pass.\nFirst failure:\n  Bo's bond failed\nCases:\n  a  FAIL\nStuck? check(f, hint=1)"
    assert anonymised(message, "bo") == f"f: 0 of 2 cases pass.\nFirst failure:\n  {ANONYMOUS}'s bond failed"


@pytest.mark.slow
def test_the_report_typesets_maths_offline_and_runs_nothing_injected(report):
    seen = open_offline(report / "index.html", SCREENSHOTS / "report.png")
    assert seen == OfflineView(maths=1, injected=None, raw=False, refused=[], fonts={"loaded"})


def test_the_bundled_mathjax_is_what_the_copies_come_from(tmp_path):
    from autograder.grading.mathjax import BUNDLED, SCRIPT, copy_mathjax

    copied = copy_mathjax(tmp_path)
    assert (copied / SCRIPT).read_bytes() == (BUNDLED / SCRIPT).read_bytes()
    assert (copied / "config.js").read_text().startswith("window.MathJax")


@pytest.fixture(scope="module")
def feedback_page(graded_class: Path) -> Path:
    made = tfcourse("feedback", LESSON, "--course", graded_class)
    assert made.returncode == 0, made.stderr[-3000:]
    return graded_class / "feedback" / "bo" / LESSON / f"{LESSON}.html"


@pytest.mark.slow
def test_feedback_pages_carry_mathjax_and_fetch_it_from_nowhere(feedback_page):
    page = feedback_page.read_text()
    assert not re.search(r"<script[^>]*\bsrc=\"?(https?:)?//", page, re.IGNORECASE)
    assert "fontURL: 'mathjax/output/chtml/fonts/woff-v2'" in page
    assert (feedback_page.parent / "mathjax" / FONTS / "MathJax_Main-Regular.woff").is_file()


@pytest.mark.slow
def test_feedback_maths_typesets_offline(feedback_page):
    seen = open_offline(feedback_page, SCREENSHOTS / "feedback.png")
    assert seen.maths > 0 and not seen.raw and seen.refused == [] and seen.fonts == {"loaded"}, seen
