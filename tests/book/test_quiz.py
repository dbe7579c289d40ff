"""The ``{quiz}`` directive (``book/_ext/quiz.py``): what it accepts, what it refuses, and
that every quiz of the book is valid. Fast: a tiny Sphinx project, not the book."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import quiz  # book/_ext is on the path, not a package

QUIZ_BLOCK = re.compile(r"^(?P<fence>`{3,})\{quiz\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.MULTILINE | re.DOTALL)

VALID = """\
question: |
  What is $\\sqrt{4}$?
answers:
  - text: "`2`"
    correct: true
    why: "Because $2^2 = 4$."
  - text: "`16`"
    why: "That is $4^2$."
"""


def book_quizzes() -> list[tuple[str, str]]:
    """``(page, body)`` of every quiz of every book page."""
    return [
        (page.name, match["body"])
        for page in sorted((ROOT / "book").glob("*.md"))
        for match in QUIZ_BLOCK.finditer(page.read_text(encoding="utf-8"))
    ]


def test_a_valid_question_is_read():
    question = quiz.parse_question(VALID)
    assert question.text.strip() == "What is $\\sqrt{4}$?"
    assert [answer.correct for answer in question.answers] == [True, False]
    assert question.answers[1].why == "That is $4^2$."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (VALID.replace('    why: "That is $4^2$."\n', ""), "answer 2 has no 'why'"),
        (VALID.replace("    correct: true\n", ""), "exactly one answer must be 'correct: true', found 0"),
        (VALID.replace('  - text: "`16`"\n', '  - text: "`16`"\n    correct: true\n'), "found 2"),
        (VALID.replace("    correct: true", "    correct: yes please"), "'correct' must be true or false"),
        (VALID.replace("    why:", "    reason:", 1), "unknown keys ['reason']"),
        ("question: Why?\nanswers: []\n", "at least two answers"),
        ("answers:\n  - text: a\n", "'question'"),
        ("question: [unclosed\n", "not valid YAML"),
    ],
)
def test_an_invalid_question_is_refused(body: str, message: str):
    with pytest.raises(quiz.QuizError, match=re.escape(message)):
        quiz.parse_question(body)


def test_every_quiz_of_the_book_is_valid():
    quizzes = book_quizzes()
    assert quizzes, "no {quiz} found in book/*.md"
    problems = []
    for page, body in quizzes:
        try:
            quiz.parse_question(body)
        except quiz.QuizError as error:
            problems.append(f"{page} ({quiz.first_line(body)!r}): {error}")
    assert not problems, "\n".join(problems)


def build(tmp_path: Path, page: str) -> tuple[Path, str]:
    """Build a one-page MyST project holding ``page``; returns the HTML and the warnings."""
    from io import StringIO

    from sphinx.application import Sphinx

    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        "extensions = ['myst_parser', 'quiz']\nmyst_enable_extensions = ['dollarmath']\n"
    )
    (source / "index.md").write_text(page)
    warnings = StringIO()
    app = Sphinx(source, source, tmp_path / "html", tmp_path / "doctrees", "html", status=None, warning=warnings)
    app.build()
    return tmp_path / "html" / "index.html", warnings.getvalue()


def test_a_quiz_renders_its_markdown(tmp_path: Path):
    html, warnings = build(tmp_path, f"# Page\n\n```{{quiz}}\n{VALID}```\n")
    assert not warnings
    text = html.read_text(encoding="utf-8")
    assert 'class="quiz docutils container"' in text
    assert text.count("quiz-answer") == 2 and text.count("quiz-correct") == 1
    assert '<span class="math notranslate nohighlight">\\(2^2 = 4\\)</span>' in text
    assert '<code class="docutils literal notranslate"><span class="pre">16</span></code>' in text
    assert "_static/quiz.js" in text and "_static/quiz.css" in text


def test_an_invalid_quiz_fails_the_build_naming_page_and_question(tmp_path: Path):
    body = VALID.replace("    correct: true\n", "")
    _, warnings = build(tmp_path, textwrap.dedent(f"# Page\n\n```{{quiz}}\n{body}```\n"))
    assert 'index.md:3: ERROR: quiz in index.md (question "What is $\\sqrt{4}$?")' in warnings
    assert "found 0" in warnings
