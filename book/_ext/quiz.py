"""``{quiz}``: a self-check question the reader answers in the browser, with no kernel.

The directive's whole body is YAML::

    question: |
      Markdown (code, maths, a short code block for "predict the output").
    answers:
      - text: "Markdown of an answer"
        correct: true
        why: "Why it is right."
      - text: "A plausible wrong answer"
        why: "Why it is wrong, and what is true instead."

Exactly one answer is ``correct: true`` and every answer has a ``why``; anything else is a
build error naming the page, the line and the question. The question, the answers and the
explanations are parsed as Markdown of the page (code, maths and code blocks work); a body
that holds a code block is opened with four backticks, ````{quiz}, so that the
code block's own fence does not close the directive.

The HTML is a ``div.quiz`` holding ``div.quiz-question`` and one ``div.quiz-answer`` per
answer (``quiz-correct`` on the right one), each with its ``div.quiz-choice`` and
``div.quiz-why``. Without JavaScript every explanation shows; ``_static/quiz.js`` hides
them, makes each choice a button and, on a click, marks it right or wrong and shows its
explanation (``_static/quiz.css`` styles both). Nothing is fetched: the book reads offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ANSWER_KEYS = {"text", "correct", "why"}


class QuizError(ValueError):
    """A quiz body that is not a valid question."""


@dataclass(frozen=True)
class Answer:
    text: str
    why: str
    correct: bool


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[Answer, ...]


def _answer(number: int, entry: object) -> Answer:
    """One entry of ``answers`` (``number`` counts from 1, for the error message)."""
    if not isinstance(entry, dict):
        raise QuizError(f"answer {number} is not a mapping with text, why and correct")
    unknown = set(entry) - ANSWER_KEYS
    if unknown:
        raise QuizError(f"answer {number} has unknown keys {sorted(unknown)} (allowed: {sorted(ANSWER_KEYS)})")
    for key in ("text", "why"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise QuizError(f"answer {number} has no {key!r}")
    correct = entry.get("correct", False)
    if not isinstance(correct, bool):
        raise QuizError(f"answer {number}: 'correct' must be true or false, got {correct!r}")
    return Answer(text=entry["text"], why=entry["why"], correct=correct)


def parse_question(body: str) -> Question:
    """The question a quiz's YAML ``body`` states; raises :class:`QuizError` when it is not valid."""
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise QuizError(f"the body is not valid YAML: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("question"), str) or not data["question"].strip():
        raise QuizError("the body must be YAML with a 'question' (Markdown) and 'answers' (a list)")
    unknown = set(data) - {"question", "answers"}
    if unknown:
        raise QuizError(f"unknown keys {sorted(unknown)} (allowed: question, answers)")
    entries = data.get("answers")
    if not isinstance(entries, list) or len(entries) < 2:
        raise QuizError("'answers' must list at least two answers")
    answers = tuple(_answer(number, entry) for number, entry in enumerate(entries, start=1))
    correct = sum(answer.correct for answer in answers)
    if correct != 1:
        raise QuizError(f"exactly one answer must be 'correct: true', found {correct}")
    return Question(text=data["question"], answers=answers)


def first_line(body: str) -> str:
    """A short quote of the question, to name it in an error."""
    for line in body.splitlines():
        text = line.strip().removeprefix("question:").strip(" |>\"'")
        if text:
            return text[:80]
    return "(empty quiz)"


class Quiz(SphinxDirective):
    """The ``{quiz}`` directive: one multiple-choice question with an explanation per answer."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        body = "\n".join(self.content)
        try:
            question = parse_question(body)
        except QuizError as error:
            page = self.env.doc2path(self.env.docname, base=False)
            raise self.error(f'quiz in {page} (question "{first_line(body)}"): {error}') from error
        quiz = nodes.container(classes=["quiz"])
        quiz += self._markdown(question.text, "quiz-question")
        for answer in question.answers:
            classes = ["quiz-answer", "quiz-correct"] if answer.correct else ["quiz-answer"]
            block = nodes.container(classes=classes)
            block += self._markdown(answer.text, "quiz-choice")
            block += self._markdown(answer.why, "quiz-why")
            quiz += block
        return [quiz]

    def _markdown(self, text: str, css_class: str) -> nodes.container:
        """``text`` parsed as Markdown of the page, in a ``div`` of class ``css_class``."""
        container = nodes.container(classes=[css_class])
        lines = StringList(text.splitlines(), source=self.get_source_info()[0])
        self.state.nested_parse(lines, self.content_offset, container)
        return container


def setup(app: Sphinx) -> dict:
    app.add_directive("quiz", Quiz)
    app.add_css_file("quiz.css")
    app.add_js_file("quiz.js", defer="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
