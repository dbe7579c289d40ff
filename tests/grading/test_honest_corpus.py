"""Honest work never loses a point, and the self-check is the grade.

A corpus of learners' versions of lesson 02 (:mod:`tests.support.honest_corpus`) is graded
three ways: ``tfcourse grade`` on a class holding all of them, ``tfcourse check`` on each
learner's own folder, and the real ``nbgrader autograde`` on a copy of the class. Every
honest version earns full marks from all three, and every version, honest or wrong, gets
the same score from ``tfcourse check`` as from ``tfcourse grade``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder.grading.selfcheck import SelfCheck
from tests.support.grading_course import (
    LESSON,
    TIMESTAMP,
    gradebook_scores,
    json_reports,
    released_course,
    solution_ids,
    solved,
    tfcourse,
)
from tests.support.honest_corpus import HONEST, WRONG, Variant

FULL_MARKS = 9.0
NOTEBOOK = f"{LESSON}.ipynb"


def submit_variant(course: Path, variant: Variant, solved_notebook) -> None:
    folder = course / "submitted" / variant.name / LESSON
    variant.write(solved_notebook, folder, NOTEBOOK)
    (folder / "timestamp.txt").write_text(TIMESTAMP)


def nbgrader_autograde(course: Path, *args: str) -> None:
    environment = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force", *args], cwd=course,
                            capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The class of every variant, graded by ``tfcourse grade`` and by ``nbgrader autograde`` (on a copy),
    and each learner's own folder; the scores of each."""
    course = released_course(tmp_path_factory)
    solved_notebook = solved(course, solution_ids(course))
    own = tmp_path_factory.mktemp("learners")
    for variant in HONEST + WRONG:
        submit_variant(course, variant, solved_notebook)
        variant.write(solved_notebook, own / variant.name, NOTEBOOK)
    twin = tmp_path_factory.mktemp("twin") / "course"
    shutil.copytree(course, twin)
    graded = tfcourse("grade", LESSON, "--course", course, "--json")
    assert graded.returncode == 0, graded.stderr[-3000:]
    nbgrader_autograde(twin)
    with SelfCheck([torch.device("cpu")]) as checker:
        checked = {v.name: checker.score(own / v.name / NOTEBOOK)[0].score for v in HONEST + WRONG}
    return {"grade": {student: report["score"] for student, report in json_reports(graded.stdout).items()},
            "nbgrader": gradebook_scores(twin), "check": checked, "own": own}


def test_the_corpus_is_large_enough():
    assert len(HONEST) >= 30 and len({v.name for v in HONEST + WRONG}) == len(HONEST + WRONG)


@pytest.mark.slow
@pytest.mark.parametrize("grader", ["grade", "check", "nbgrader"])
def test_every_honest_variant_gets_full_marks(corpus, grader):
    lost = {v.name: corpus[grader][v.name] for v in HONEST if corpus[grader][v.name] != FULL_MARKS}
    assert not lost, f"honest work lost points under {grader}: {lost}"


@pytest.mark.slow
def test_the_self_check_is_the_grade_on_every_variant(corpus):
    names = [v.name for v in HONEST + WRONG]
    assert {n: corpus["check"][n] for n in names} == {n: corpus["grade"][n] for n in names}
    assert all(corpus["grade"][v.name] < FULL_MARKS for v in WRONG)


@pytest.mark.slow
def test_the_check_command_reads_the_files_beside_the_notebook(corpus):
    result = tfcourse("check", corpus["own"] / "helper-package" / NOTEBOOK, "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LESSON}: 9 / 9 points" in result.stdout
    missing = tfcourse("check", corpus["own"] / "helper-missing" / NOTEBOOK, "--device", "cpu")
    assert missing.returncode == 1 and "No module named 'helpers'" in missing.stdout
