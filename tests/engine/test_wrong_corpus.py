"""The corpus of natural wrong answers (tests/support/wrong_answers): each fails, and its report names it.

One case per answer, ``lessonNN-<exercise>-<k>``: the check must fail on the visible cases
(a wrong answer that passes is a hole in the checks) and its report must contain every one
of the answer's words, so that the learner reads the mistake in their own terms.
"""

from __future__ import annotations

import pytest

from autograder.registry import lesson_exercises
from tests.support.wrong_corpus import answer_ids, corpus, diagnose

CORPUS = corpus()
ANSWERS = [answer for answers in CORPUS.values() for answer in answers]
IDS = [answer_id for lesson, answers in CORPUS.items() for answer_id in answer_ids(lesson, answers)]


@pytest.mark.parametrize("answer", ANSWERS, ids=IDS)
def test_a_wrong_answer_fails_and_its_report_names_the_mistake(answer):
    diagnosis = diagnose(answer)
    assert not diagnosis.result.passed, f"{answer.story}: this wrong answer passes the visible cases"
    assert not diagnosis.missing, (f"{answer.story}: the report lacks {diagnosis.missing}:\n"
                                   f"{diagnosis.result.message}")


@pytest.mark.parametrize("lesson", list(CORPUS))
def test_each_lesson_file_answers_every_exercise_of_its_lesson(lesson):
    answers = CORPUS[lesson]
    exercises = [exercise.name for exercise in lesson_exercises(lesson)]
    assert {answer.exercise for answer in answers} <= set(exercises), "an answer to another lesson's exercise"
    assert set(exercises) <= {answer.exercise for answer in answers}, (
        f"no wrong answer to {sorted(set(exercises) - {answer.exercise for answer in answers})}")
    for answer in answers:
        assert answer.words and all(word.strip() for word in answer.words), f"{answer.story}: no words to look for"
        assert answer.story.strip() and "\n" not in answer.story.strip(), f"{answer.exercise}: story is one line"
