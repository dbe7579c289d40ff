"""Hostile submission folders and notebooks, attacking the trusted side, graded by ``tfcourse grade`` in
one run beside honest ones.

Each hostile submission solves ``softmax`` honestly (2 of 9 points) where it has a notebook to
read, and attacks what the grader does as the instructor: it links to files it must not read
or write, puts FIFOs, devices, hard links and absurd timestamps where the grader reads, names
its folder to mislead, and fills its notebook with JSON, code and HTML meant to stop the run
or reach the feedback page. Each must score exactly what its honest part earns (0 where
there is nothing honest to read), with the reason; its neighbours keep their scores; the
gradebook equals the report; nothing outside is read or written; the instructor's files stay
as they were; and a second run repairs what was changed behind the journal's back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import stat
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from tests.support.grading_course import (
    LESSON,
    MODES,
    TIMESTAMP,
    Grader,
    gradebook_scores,
    json_reports,
    released,
    released_course,
    solution_ids,
    solved,
    submit,
)

pytestmark = pytest.mark.slow
NOTEBOOK = f"{LESSON}.ipynb"
CANARY = f"CANARY-{secrets.token_hex(8)}"
WALL_SECONDS = 30
GRADE = ("grade", LESSON, "--workers", 2, "--json", "--timeout", WALL_SECONDS)


def cell_with_id(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def softmax_only(course: Path) -> nbformat.NotebookNode:
    return solved(course, {"softmax"})


def with_cell(course: Path, cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Softmax solved, and ``cell`` right after its check."""
    notebook = softmax_only(course)
    notebook.cells.insert(notebook.cells.index(cell_with_id(notebook, "check_softmax")) + 1, cell)
    return notebook


def with_solution(course: Path, grade_id: str, source: str) -> nbformat.NotebookNode:
    notebook = softmax_only(course)
    cell_with_id(notebook, grade_id).source = source
    return notebook


def folder_of(course: Path, student: str) -> Path:
    folder = course / "submitted" / student / LESSON
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def submit_with(course: Path, student: str, notebook: nbformat.NotebookNode | bytes, timestamp: bytes | None) -> Path:
    """The submission's notebook and, unless ``None``, its ``timestamp.txt`` as given."""
    path = submit(course, student, notebook)
    stamp = path.parent / "timestamp.txt"
    stamp.unlink()
    if timestamp is not None:
        stamp.write_bytes(timestamp)
    return path.parent


# --- the attacks on the submission folder (class 1) -------------------------------------------------------

def folder_attacks(course: Path, outside: Path) -> dict[str, float]:
    """Submissions whose folder, files or timestamp attack the grader; their expected scores."""
    source_notebook = course / "source" / LESSON / NOTEBOOK
    os.symlink(source_notebook, folder_of(course, "links-to-instructor-notebook") / NOTEBOOK)
    os.symlink(outside / "secret.txt", folder_of(course, "links-to-a-secret") / NOTEBOOK)
    os.symlink(outside / "secret.txt", folder_of(course, "links-to-a-secret") / "timestamp.txt")

    os.link(outside / "secret-notebook.ipynb", folder_of(course, "hard-link") / NOTEBOOK)
    os.mkfifo(folder_of(course, "fifo-notebook") / NOTEBOOK)
    (folder_of(course, "folder-notebook") / NOTEBOOK).mkdir()

    (course / "submitted" / "linked-assignment-folder").mkdir(parents=True)
    os.symlink(outside / "solved", course / "submitted" / "linked-assignment-folder" / LESSON)
    os.symlink(outside / "solved-student", course / "submitted" / "linked-student-folder")

    folder = submit_with(course, "timestamp-links-to-seed", softmax_only(course), None)
    os.symlink(course / "hidden_seed.txt", folder / "timestamp.txt")
    folder = submit_with(course, "timestamp-is-a-device", softmax_only(course), None)
    if os.geteuid() == 0:
        os.mknod(folder / "timestamp.txt", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    else:
        os.mkfifo(folder / "timestamp.txt")
    submit_with(course, "timestamp-of-ten-megabytes", softmax_only(course), b"2030-01-01 " * (1 << 20))
    submit_with(course, "timestamp-unparseable", softmax_only(course), b"2030-02-31 25:61:00.000000 UTC")
    submit_with(course, "timestamp-in-year-9999", softmax_only(course), b"9999-12-31 23:59:59.999999 UTC")

    folder = submit_with(course, "links-to-write-through", softmax_only(course), TIMESTAMP.encode())
    os.symlink(course / "gradebook.db", folder / f".{NOTEBOOK}.tmp")
    os.symlink(outside / "target.txt", folder / "submission_secret.txt")
    autograded = course / "autograded" / "links-to-write-through" / LESSON
    autograded.mkdir(parents=True)
    os.symlink(course / "nbgrader_config.py", autograded / NOTEBOOK)
    os.symlink(outside / "target.txt", autograded / f".{NOTEBOOK}.tmp")
    os.symlink(outside / "target.txt", autograded / "timestamp.txt")

    submit(course, "autograded-folder-is-a-link", softmax_only(course))
    (course / "autograded").mkdir(exist_ok=True)
    os.symlink(outside / "elsewhere", course / "autograded" / "autograded-folder-is-a-link", target_is_directory=True)
    (outside / "elsewhere").mkdir()

    helper_softmax = with_solution(course, "softmax", "from helpers import softmax\n")
    (outside / "helpers.py").write_text(HELPER_SOFTMAX)
    folder = submit_with(course, "helper-is-a-link", helper_softmax, TIMESTAMP.encode())
    os.symlink(outside / "helpers.py", folder / "helpers.py")
    folder = submit_with(course, "helper-is-a-hard-link", helper_softmax, TIMESTAMP.encode())
    os.link(outside / "helpers.py", folder / "helpers.py")
    folder = submit_with(course, "helper-folder-is-a-link", with_solution(
        course, "softmax", "from mine.helpers import softmax\n"), TIMESTAMP.encode())
    os.symlink(outside, folder / "mine", target_is_directory=True)
    (submit_with(course, "helper-beside", helper_softmax, TIMESTAMP.encode()) / "helpers.py").write_text(HELPER_SOFTMAX)
    folder = submit_with(course, "helper-writes-itself", helper_softmax, TIMESTAMP.encode())
    (folder / "helpers.py").write_text(HELPER_SOFTMAX + "\nopen(__file__, 'a').write('changed')\n")

    folder = submit_with(course, "crowded-folder", softmax_only(course), TIMESTAMP.encode())
    for number in range(300):
        (folder / f"file-{number:03}.txt").write_text("x")
    (folder / "nested" / "deeper").mkdir(parents=True)
    return {"links-to-instructor-notebook": 0.0, "links-to-a-secret": 0.0, "hard-link": 0.0, "fifo-notebook": 0.0,
            "folder-notebook": 0.0, "linked-assignment-folder": 0.0, "linked-student-folder": 0.0,
            "timestamp-links-to-seed": 2.0, "timestamp-is-a-device": 2.0, "timestamp-of-ten-megabytes": 2.0,
            "timestamp-unparseable": 2.0, "timestamp-in-year-9999": 2.0, "links-to-write-through": 2.0,
            "crowded-folder": 2.0, "helper-is-a-link": 0.0, "helper-is-a-hard-link": 0.0,
            "helper-folder-is-a-link": 0.0, "helper-beside": 2.0, "helper-writes-itself": 0.0}


HELPER_SOFTMAX = """import torch


def softmax(x, dim=-1, temperature=1.0):
    z = x / temperature
    m = z.amax(dim=dim, keepdim=True)
    e = torch.exp(z - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
"""
BAD_NAMES = ["honest-full\u202e", "a,b", "-rf", "evil\nnot graded: honest-full"]  # not student ids
UNRECORDABLE = "autograded-folder-is-a-link"  # its grades cannot be written where they go: named, not graded


# --- the attacks in the notebook (classes 2, 6 and 10) ----------------------------------------------------

XSS = """# My answer

Softmax is $\\mathrm{softmax}(x)_i = e^{x_i} / \\sum_j e^{x_j}$ and $a < b$.

<script>document.title = "XSS-SCRIPT"</script>
<img src="x" onerror="alert('XSS-ONERROR')">
<a href="javascript:alert('XSS-JS-URL')">click</a> [also](javascript:alert('XSS-MD-URL'))
<div onmouseover="alert('XSS-HOVER')">hover</div>
"""


def notebook_attacks(course: Path) -> dict[str, float]:
    """Submissions whose notebook attacks the trusted side; their expected scores."""
    claims = softmax_only(course)
    impostor = nbformat.v4.new_markdown_cell("I am the softmax cell")
    impostor.metadata["nbgrader"] = dict(cell_with_id(claims, "softmax").metadata["nbgrader"])
    double = nbformat.v4.new_code_cell("def attention_scores(q, k):\n    return q @ k.transpose(-2, -1)")
    double.metadata["nbgrader"] = dict(cell_with_id(claims, "attention_scores").metadata["nbgrader"])
    intro = nbformat.v4.new_code_cell("pass")
    intro.metadata["nbgrader"] = dict(cell_with_id(claims, "intro").metadata["nbgrader"])
    claims.cells[0:0] = [impostor, intro]
    claims.cells.append(double)  # the first carrier, left as released, is the one graded

    deep_json = nbformat.writes(softmax_only(course)).replace(
        '"metadata": {', '"metadata": {"deep": ' + "[" * 50_000 + "]" * 50_000 + ", ", 1)
    huge_int = nbformat.writes(softmax_only(course)).replace('"nbformat": 4', '"nbformat": 4, "x": ' + "9" * 10_000)
    too_many_cells = softmax_only(course)
    too_many_cells.cells += [nbformat.v4.new_raw_cell("") for _ in range(5000)]

    for student, notebook in {
        "lone-surrogate": json.dumps(with_cell(course, nbformat.v4.new_markdown_cell("broken \ud800 text"))).encode(),
        "null-byte": with_solution(course, "attention_scores", "def attention_scores(q, k):\n    return q\0"),
        "deep-expression": with_solution(course, "attention_scores",
                                         "def attention_scores(q, k):\n    return " + "-" * 100_000 + "q"),
        "long-elif-chain": with_solution(course, "attention_scores",
                                         "if True:\n    pass\n" + "elif False:\n    pass\n" * 30_000),
        "bang-lines": with_cell(course, nbformat.v4.new_code_cell("\n".join(f"!echo {i}" for i in range(20_000)))),
        "absurd-shape-result": with_solution(course, "attention_scores",
                                             "def attention_scores(q, k):\n    return torch.zeros(2**31, 0)"),
        "claims-other-ids": claims,
        "xss-markdown": with_cell(course, nbformat.v4.new_markdown_cell(XSS)),
        "deep-json": deep_json.encode(),
        "huge-int-json": huge_int.encode(),
        "too-many-cells": too_many_cells,
    }.items():
        submit(course, student, notebook)
    return {"lone-surrogate": 2.0, "null-byte": 2.0, "deep-expression": 2.0, "long-elif-chain": 2.0,
            "bang-lines": 2.0, "absurd-shape-result": 2.0, "claims-other-ids": 2.0, "xss-markdown": 2.0,
            "deep-json": 0.0, "huge-int-json": 0.0, "too-many-cells": 0.0}


def honest(course: Path) -> dict[str, float]:
    submit(course, "honest-full", solved(course, solution_ids(course)))
    submit(course, "honest-partial", solved(course, {"softmax", "attention_scores"}))
    submit(course, "honest-untouched", released(course))
    return {"honest-full": 9.0, "honest-partial": 3.0, "honest-untouched": 0.0}


def digests(*roots: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``roots`` (links not followed)."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        found.update({str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
    return found


def text_under(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*")
                     if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module", params=MODES)
def graded(request, tmp_path_factory):
    grader = Grader(request.param)
    if grader.unavailable():
        pytest.skip(grader.unavailable())
    course = released_course(tmp_path_factory)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text(f"{CANARY}\n")
    (outside / "target.txt").write_text("untouched\n")
    full = solved(course, solution_ids(course))
    nbformat.write(full, outside / "secret-notebook.ipynb")
    for folder in (outside / "solved", outside / "solved-student" / LESSON):
        folder.mkdir(parents=True)
        nbformat.write(full, folder / NOTEBOOK)
    expected = {**honest(course), **folder_attacks(course, outside), **notebook_attacks(course)}
    for name in BAD_NAMES:
        submit(course, name, full)
    instructor = digests(course / "nbgrader_config.py", course / "hidden_seed.txt", course / "source",
                         course / "release")
    before = digests(outside)
    grader.hand_over(course)
    result = grader.tfcourse(*GRADE, "--course", course, course=course)
    return SimpleNamespace(grader=grader, course=course, outside=outside, expected=expected, result=result,
                           reports=json_reports(result.stdout), gradebook=gradebook_scores(course),
                           instructor=instructor, outside_before=before)


def test_the_run_finishes_and_names_only_the_folders_that_are_no_student(graded):
    assert graded.result.returncode == 1, graded.result.stderr[-3000:]
    assert set(graded.reports) == set(graded.expected)
    assert len(graded.expected) >= 18 + 3
    not_graded = [line for line in graded.result.stderr.splitlines() if line.startswith("not graded: ")]
    assert len(not_graded) == len(BAD_NAMES) + 1
    assert sum("is not a student id" in line for line in not_graded) == len(BAD_NAMES)
    assert any(line.startswith(f"not graded: {UNRECORDABLE}: its grades could not be recorded") and
               "symbolic link" in line for line in not_graded)
    assert "Traceback" not in graded.result.stderr


def test_each_submission_scores_exactly_what_its_honest_part_earns(graded):
    scores = {student: report["score"] for student, report in graded.reports.items()}
    assert scores == graded.expected
    assert {student: graded.gradebook[student] for student in graded.expected} == graded.expected
    assert not set(graded.gradebook) & {*BAD_NAMES, UNRECORDABLE}


@pytest.mark.parametrize("student, reason", [
    ("links-to-instructor-notebook", "symbolic link"), ("links-to-a-secret", "symbolic link"),
    ("hard-link", "hard link"), ("fifo-notebook", "FIFO"), ("folder-notebook", "a folder"),
    ("linked-assignment-folder", "not a folder"), ("linked-student-folder", "not a folder"),
    ("deep-json", "not a readable notebook"), ("huge-int-json", "not a readable notebook"),
    ("too-many-cells", "more than"), ("absurd-shape-result", "malformed data"),
])
def test_the_failed_checks_say_why(graded, student, reason):
    messages = [c["message"] for c in graded.reports[student]["checks"] if not c["passed"]]
    assert messages and all(reason in message for message in messages[-1:]), messages


@pytest.mark.parametrize("student, reason", [
    ("helper-is-a-link", "No module named 'helpers'"), ("helper-is-a-hard-link", "No module named 'helpers'"),
    ("helper-folder-is-a-link", "No module named 'mine'"), ("helper-writes-itself", "Permission denied"),
])
def test_files_beside_the_notebook_reach_the_code_as_read_only_copies_only(graded, student, reason):
    softmax = next(check for check in graded.reports[student]["checks"] if check["name"] == "softmax")
    assert not softmax["passed"] and reason in softmax["message"], softmax["message"]
    submitted = graded.course / "submitted" / student / LESSON / "helpers.py"
    assert not submitted.is_file() or not submitted.read_text().endswith("changed")


@pytest.mark.parametrize("student, note", [
    ("timestamp-links-to-seed", "symbolic link"), ("timestamp-is-a-device", "timestamp.txt is a"),
    ("timestamp-of-ten-megabytes", "longer than"), ("timestamp-unparseable", "valid time"),
    ("timestamp-in-year-9999", "outside the years"), ("links-to-write-through", "symbolic link"),
    ("helper-is-a-link", "helpers.py is a symbolic link"), ("helper-is-a-hard-link", "helpers.py is a hard link"),
    ("helper-folder-is-a-link", "mine is a symbolic link"),
])
def test_what_was_odd_in_a_folder_is_noted_and_the_time_is_left_out(graded, student, note):
    notes = [line for line in graded.result.stderr.splitlines() if line.startswith(f"note: {student}: ")]
    assert any(note in line for line in notes), notes
    if student.startswith("timestamp-"):
        database = sqlite3.connect(graded.course / "gradebook.db")
        query = "SELECT timestamp FROM submitted_assignment WHERE student_id = ?"
        (timestamp,) = database.execute(query, (student,)).fetchone()
        assert timestamp is None


def test_nothing_outside_or_of_the_instructor_is_read_or_written(graded):
    course = graded.course
    assert digests(graded.outside) == graded.outside_before
    assert digests(course / "nbgrader_config.py", course / "hidden_seed.txt", course / "source",
                   course / "release") == graded.instructor
    seed = (course / "hidden_seed.txt").read_text().strip()
    for seen in (graded.result.stdout, graded.result.stderr, text_under(course / "autograded")):
        assert CANARY not in seen
        assert seed not in seen
        assert "BEGIN HIDDEN TESTS" not in seen
    database = sqlite3.connect(course / "gradebook.db")
    timestamps = [t for (t,) in database.execute("SELECT timestamp FROM submitted_assignment")]
    assert not any(seed in str(t) or CANARY in str(t) for t in timestamps)
    assert "\nnot graded: honest-full" not in graded.result.stderr


def test_the_autograded_folders_hold_plain_files_only(graded):
    autograded = graded.course / "autograded"
    assert [p.name for p in autograded.rglob("*") if p.is_symlink()] == [UNRECORDABLE]
    assert not list((graded.outside / "elsewhere").iterdir())
    written = autograded / "links-to-write-through" / LESSON
    assert sorted(p.name for p in written.iterdir()) == [NOTEBOOK, "timestamp.txt"]
    assert nbformat.reads((written / NOTEBOOK).read_text(), as_version=4).cells
    surrogate = (autograded / "lone-surrogate" / LESSON / NOTEBOOK).read_bytes().decode("utf-8")
    assert "broken ? text" in surrogate
    claims = nbformat.read(autograded / "claims-other-ids" / LESSON / NOTEBOOK, as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in claims.cells]
    assert ids.count("softmax") == 1 and ids.count("intro") == 1 and ids.count("attention_scores") == 1


def test_feedback_pages_carry_no_learners_script(graded):
    result = graded.grader.tfcourse("feedback", LESSON, "--course", graded.course, course=graded.course)
    page = (graded.course / "feedback" / "xss-markdown" / LESSON / f"{LESSON}.html").read_text()
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'id="My-answer"' in page and "\\mathrm{softmax}" in page and "$a &lt; b$" in page
    assert '<a rel="noopener noreferrer">click</a>' in page and "<div>hover</div>" in page
    for mark in ("XSS-SCRIPT", "XSS-ONERROR", "XSS-JS-URL", "XSS-HOVER"):
        assert mark not in page, mark
    assert not [url for url in re.findall(r"""(?:href|src)\s*=\s*["']?([^"'\s>]*)""", page) if "javascript" in url]


def test_a_second_run_repairs_what_was_changed_behind_the_journal(graded):
    course = graded.course
    notebook = course / "autograded" / "honest-partial" / LESSON / NOTEBOOK
    expected_notebook = notebook.read_bytes()
    notebook.write_text(notebook.read_text().replace("cases pass", "cases FAIL"))
    (course / "autograded" / "honest-full" / LESSON / NOTEBOOK).unlink()
    database = sqlite3.connect(course / "gradebook.db")
    rows = "SELECT id FROM submitted_notebook WHERE assignment_id IN (SELECT id FROM submitted_assignment WHERE " \
           "student_id = ?)"
    with database:
        database.execute(f"UPDATE grade SET auto_score = 0 WHERE notebook_id IN ({rows})", ("honest-full",))
        database.execute(f"UPDATE grade SET needs_manual_grade = 1 WHERE notebook_id IN ({rows})",
                         ("honest-untouched",))
        database.execute(f"UPDATE comment SET auto_comment = 'forged' WHERE notebook_id IN ({rows})",
                         ("honest-partial",))
        database.execute("UPDATE submitted_assignment SET timestamp = NULL WHERE student_id = 'links-to-write-through'")
    before = {student: graded.gradebook[student] for student in graded.expected}
    journal = course / ".tfcourse" / f"{LESSON}.journal.jsonl"
    journaled = journal.read_text()
    again = graded.grader.tfcourse(*GRADE, "--course", course, course=course)
    assert again.returncode == 1, again.stderr[-3000:]
    assert {s: r["score"] for s, r in json_reports(again.stdout).items()} == graded.expected
    assert journal.read_text() == journaled  # nothing was graded again: every repair came from the journal
    assert {s: score for s, score in gradebook_scores(course).items() if s in before} == before
    assert notebook.read_bytes() == expected_notebook
    assert (course / "autograded" / "honest-full" / LESSON / NOTEBOOK).is_file()
    assert not database.execute("SELECT 1 FROM comment WHERE auto_comment = 'forged'").fetchall()
    assert not database.execute(f"SELECT 1 FROM grade WHERE needs_manual_grade = 1 AND notebook_id IN ({rows})",
                                ("honest-untouched",)).fetchall()
    assert database.execute("SELECT timestamp FROM submitted_assignment WHERE student_id = 'links-to-write-through'"
                            ).fetchone()[0] is not None
