"""Class grading: the data channel, the sandbox, the static scan, and the nbgrader workflow end to end."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import nbformat
import numpy as np
import pytest
import torch
from nbgrader.api import Gradebook

from autograder.grading.course import Course
from autograder.grading.pipeline import grade_notebook
from autograder.grading.plan import NotebookPlan
from autograder.grading.sandbox import Sandbox, pickle_job
from autograder.grading.submission import build_program
from autograder.harness import wire
from autograder.harness.confine import SAFE_ENVIRONMENT, Limits, probe
from autograder.harness.forbidden import in_harness
from autograder.harness.serve import CaseInput, Job, Task
from tests.support.grading_course import (
    LESSON,
    gradebook_scores,
    json_reports,
    released,
    released_course,
    sandboxed_processes_end,
    solution_ids,
    solved,
    submit,
    tfcourse,
)
from tests.support.notebooks import GRADED_LESSONS, ROOT, solution_notebook

ISOLATION = probe()
CPU = torch.device("cpu")


# --- the data channel ------------------------------------------------------------------------------

def test_wire_round_trips_plain_data():
    data = {
        "tensors": [torch.randn(2, 3, dtype=torch.float64), torch.arange(4).reshape(2, 2), torch.tensor(True),
                    torch.ones(2, dtype=torch.bfloat16), torch.empty(0, 3), torch.randn(3)[::2]],
        "arrays": (np.eye(2, dtype=np.float32), np.int64(7), np.array([True, False])),
        (1, 2): {"nested": [None, 1.5, float("inf"), "text", b"\x00bytes", 2 + 3j]},
        "torch": [torch.float32, torch.device("cpu"), torch.Size([2, 5])],
        "set": {1, 2},
    }
    back = wire.loads(wire.dumps(data))
    assert back.keys() == data.keys() and back["torch"] == data["torch"] and back["set"] == {1, 2}
    assert back[(1, 2)] == data[(1, 2)]
    for got, sent in zip(back["tensors"], data["tensors"]):
        assert type(got) is torch.Tensor and got.dtype == sent.dtype and torch.equal(got, sent)
    assert isinstance(back["arrays"], tuple) and np.array_equal(back["arrays"][0], data["arrays"][0])
    assert type(back["arrays"][1]) is np.int64 and back["arrays"][1] == 7


def test_wire_sends_learner_objects_as_opaque_names_only():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    class Liar(torch.Tensor):
        pass

    back = wire.loads(wire.dumps([AlwaysEqual(), torch.zeros(2).as_subclass(Liar), lambda: 1]))
    assert back[0] == wire.Opaque("AlwaysEqual") and back[2] == wire.Opaque("function")
    assert type(back[1]) is torch.Tensor and torch.equal(back[1], torch.zeros(2))


@pytest.mark.parametrize("message", [
    b"", b"\x05\x00\x00\x00\x00\x00\x00\x00{}",
    wire.HEADER.pack(20) + b'{"tree": 1, "buffers"',
    wire.dumps(torch.zeros(4))[:-1],
    wire.dumps({"a": 1}).replace(b'"dict"', b'"eval"'),
    wire.dumps(torch.zeros(4)).replace(b'"shape": [4]', b'"shape": [5]'),
    wire.dumps(torch.zeros(4)).replace(b'"float32"', b'"object"'),
    __import__("pickle").dumps(print),
])
def test_wire_rejects_malformed_messages(message):
    with pytest.raises(wire.WireError):
        wire.loads(message)


# --- the sandbox -----------------------------------------------------------------------------------

INSPECT = f"""
import os, socket, sys
def inspect(x):
    def readable(path):
        try:
            os.listdir(path)
            return True
        except OSError:
            return False
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        network = "connected"
    except OSError as error:
        network = type(error).__name__
    return {{"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("tfcourse", "autograder")),
            "uid": os.getuid(), "cwd": os.listdir("."), "environment": sorted(os.environ),
            "solutions readable": readable({str(ROOT / "solutions")!r}), "network": network,
            "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
"""


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(wall_seconds=60, seconds_per_call=20), [str(ROOT / "solutions")]) as started:
        yield started


def test_the_sandbox_holds_no_reference_and_runs_confined(sandbox):
    task = Task("inspect", "function", (), [CaseInput((0,), {}, CPU, torch.float32)])
    run = sandbox.run(Job([INSPECT, 0], [task], 20))
    (case,) = [event for event in run.events if event.get("event") == "case"]
    seen = case["output"]
    assert not any(m.startswith("tfcourse") for m in seen["modules"])
    assert all(m == "autograder" or in_harness(m) for m in seen["modules"])
    assert seen["cwd"] == [] and set(seen["environment"]) <= {*SAFE_ENVIRONMENT, "HOME", "TMPDIR"}
    if ISOLATION.drops_to_nobody:
        assert seen["uid"] == 65534
    if ISOLATION.namespaces:
        assert not seen["solutions readable"] and seen["network"] != "connected"
        assert seen["processes"] == [1]


def test_a_job_that_would_carry_the_reference_is_refused_before_it_is_sent():
    from tfcourse.attention import softmax

    task = Task("f", "function", (), [CaseInput((softmax,), {}, CPU, torch.float32)])
    with pytest.raises(pickle.PicklingError, match="may not load"):
        pickle_job(Job([], [task], 1.0))


# --- the trusted side's reading of a submission ----------------------------------------------------------

def lesson_plan(lesson: str) -> NotebookPlan:
    release = ROOT / "exercises" / lesson / f"{lesson}.ipynb"
    if not release.exists():
        pytest.skip(f"{release} is not generated yet")
    return NotebookPlan(solution_notebook(lesson), release, 1234, [CPU])


def cells_replaced(lesson: str, sources: dict[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.read(ROOT / "exercises" / lesson / f"{lesson}.ipynb", as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell.source = sources[grade_id]
    return notebook


def test_the_static_scan_rejects_forbidden_code_before_anything_runs():
    plan = lesson_plan(LESSON)
    notebook = cells_replaced(LESSON, {
        "softmax": "def softmax(x, dim=-1, temperature=1.0):\n    return torch.softmax(x / temperature, dim)",
        "attention_scores": "from tfcourse.attention import attention_scores",
        "attention_entropy": "def attention_entropy(weights):\n    return weights.sum(-1)",
    })
    program = build_program(plan, notebook)
    rejected = {plan.tasks[task].name: mismatch.message for task, mismatch in program.rejected.items()}
    assert set(rejected) == {"softmax", "attention_scores"}
    assert "torch.softmax" in rejected["softmax"] and "tfcourse" in rejected["attention_scores"]
    assert [plan.tasks[s].name for s in program.steps if isinstance(s, int)] == [
        "scaled_dot_product_attention", "attention_entropy", "numpy_attention"]


@pytest.mark.parametrize("source, rejected", [
    ("from torch import softmax", True), ("from torch.nn.functional import softmax", True),
    ("from helpers import softmax", False), ("from my.torch import softmax", False),
])
def test_the_static_scan_tells_a_librarys_function_from_a_learners_module(source, rejected):
    plan = lesson_plan(LESSON)
    program = build_program(plan, cells_replaced(LESSON, {"softmax": source}))
    assert any(plan.tasks[task].name == "softmax" for task in program.rejected) == rejected


IN_PLACE_SOFTMAX = """
def softmax(x, dim=-1, temperature=1.0):
    x /= temperature
    m = x.amax(dim=dim, keepdim=True)
    x -= torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    x.exp_()
    total = x.sum(dim=dim, keepdim=True)
    return x / torch.where(total > 0, total, torch.ones_like(total))
"""


def test_code_that_changes_its_inputs_in_place_fails_in_check_and_in_the_grade_alike(sandbox, tmp_path):
    from autograder.checker import run_check

    namespace = {"torch": torch}
    exec(IN_PLACE_SOFTMAX, namespace)
    result = run_check(namespace["softmax"])
    assert not result.passed and "changed its input `x` in place" in result.message
    plan = lesson_plan(LESSON)
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(cells_replaced(LESSON, {"softmax": IN_PLACE_SOFTMAX}), path)
    grades, _ = grade_notebook(sandbox, plan, path, "learner", LESSON, sandbox.limits)
    (graded,) = [c for c in grades.score.checks if c.name == "softmax"]
    assert not graded.passed and "changed its input `x` in place" in graded.message


@pytest.mark.slow
@pytest.mark.parametrize("lesson", GRADED_LESSONS)
def test_every_lessons_solution_earns_full_marks_in_the_sandbox_and_the_release_none(sandbox, lesson, tmp_path):
    plan = lesson_plan(lesson)
    for notebook, full in ((solution_notebook(lesson), True), (ROOT / "exercises" / lesson / f"{lesson}.ipynb", False)):
        grades, _ = grade_notebook(sandbox, plan, notebook, "learner", lesson, sandbox.limits)
        failed = [c.message for c in grades.score.checks if not c.passed]
        assert grades.score.score == (grades.score.max_score if full else 0.0), failed
        assert grades.score.max_score > 0


# --- the nbgrader workflow ---------------------------------------------------------------------------

@pytest.mark.slow
def test_the_workflow_from_init_to_export_runs_on_nbgrader(tmp_path):
    solutions = tmp_path / "solutions"
    shutil.copytree(ROOT / "solutions" / LESSON, solutions / LESSON)
    course, student_home = tmp_path / "course", tmp_path / "student"
    assert tfcourse("init", course, "--solutions", solutions).returncode == 0
    assert tfcourse("release", LESSON, "--course", course).returncode == 0
    exchange = ["--Exchange.root", str(course / "exchange"), "--CourseDirectory.course_id", "tfcourse"]
    student_home.mkdir()

    def student(*args):
        result = subprocess.run([sys.executable, "-m", "nbgrader", *args, *exchange], cwd=student_home,
                                capture_output=True, text=True, env=dict(os.environ, HOME=str(student_home)))
        assert result.returncode == 0, result.stderr

    student("fetch_assignment", LESSON)
    nbformat.write(solved(course, {"softmax"}), student_home / LESSON / f"{LESSON}.ipynb")
    student("submit", LESSON)
    assert tfcourse("collect", LESSON, "--course", course).returncode == 0
    by_hand = course / "submitted" / "by-hand" / LESSON  # e.g. downloaded from a learning platform
    by_hand.mkdir(parents=True)
    nbformat.write(solved(course, {"softmax", "attention_scores"}), by_hand / f"{LESSON}.ipynb")
    graded = tfcourse("grade", LESSON, "--course", course, "--json")
    assert graded.returncode == 0, graded.stderr
    reports = json_reports(graded.stdout)
    (fetched,) = set(reports) - {"by-hand"}
    report = reports[fetched]
    assert set(report) == {"student", "assignment", "score", "max_score", "checks"}
    assert report["score"] == 2.0 and report["max_score"] == 9.0
    assert gradebook_scores(course) == {fetched: 2.0, "by-hand": 3.0}
    feedback = tfcourse("feedback", LESSON, "--course", course)
    assert feedback.returncode == 0, feedback.stderr
    assert "(by-hand)" in feedback.stderr and "cannot be released" in feedback.stderr
    html = (course / "feedback" / fetched / LESSON / f"{LESSON}.html").read_text()
    assert "not implemented yet" in html and "HIDDEN TESTS" not in html and "hidden=True" not in html
    assert (course / "feedback" / "by-hand" / LESSON / f"{LESSON}.html").is_file()
    student("fetch_feedback", LESSON)
    (released_feedback,) = student_home.glob(f"{LESSON}/feedback/*/{LESSON}.html")
    assert released_feedback.read_text() == html
    assert tfcourse("export", "--course", course).returncode == 0
    with open(course / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["student_id"]: (row[LESSON], row[f"{LESSON} status"]) for row in rows} == {
        fetched: ("2", "graded"), "by-hand": ("3", "graded")}


WRONG_SCORES = "def attention_scores(q, k):\n    return q @ k.transpose(-2, -1)"


@pytest.mark.slow
def test_scores_agree_with_nbgrader_autograde_on_the_same_course(tmp_path_factory):
    course = released_course(tmp_path_factory)
    wrong = solved(course, solution_ids(course))
    next(c for c in wrong.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "attention_scores").source = \
        WRONG_SCORES
    deleted = solved(course, {"softmax", "attention_entropy"})
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "check_softmax"]
    submissions = {"full": solved(course, solution_ids(course)), "partial": solved(course, {"softmax"}),
                   "untouched": released(course), "wrong": wrong, "deleted-check": deleted}
    for student, notebook in submissions.items():
        submit(course, student, notebook)
    twin = tmp_path_factory.mktemp("twin") / "course"
    shutil.copytree(course, twin)
    graded = tfcourse("grade", LESSON, "--course", course)
    assert graded.returncode == 0, graded.stderr
    autograde = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force"], cwd=twin,
                               capture_output=True, text=True,
                               env=dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"))
    assert autograde.returncode == 0, autograde.stderr[-3000:]
    ours = gradebook_scores(course)
    assert ours == gradebook_scores(twin)
    # "wrong" loses attention_scores and the attention built on it
    assert ours == {"full": 9.0, "partial": 2.0, "untouched": 0.0, "wrong": 5.0, "deleted-check": 3.0}


@pytest.mark.slow
def test_a_plain_nbgrader_autograde_after_tfcourse_grade_is_noticed_and_undone(tmp_path_factory):
    """nbgrader's Autograde button rewrites the autograded notebooks (hidden tests' source included) and the
    gradebook; the next ``tfcourse grade`` notices, and feedback shows its verdicts again, never the
    hidden tests."""
    course = released_course(tmp_path_factory)
    submissions = {"full": solved(course, solution_ids(course)), "partial": solved(course, {"softmax"})}
    for student, notebook in submissions.items():
        submit(course, student, notebook)
    assert tfcourse("grade", LESSON, "--course", course).returncode == 0
    ours = gradebook_scores(course)
    autograded = {student: course / "autograded" / student / LESSON / f"{LESSON}.ipynb" for student in submissions}
    environment = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    plain = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force"], cwd=course,
                           capture_output=True, text=True, env=environment)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert all("hidden=True" in path.read_text() for path in autograded.values())
    with Gradebook(Course(course).db_url) as gradebook:  # an instructor's other grader disagreed, say
        gradebook.find_grade("check_softmax", LESSON, LESSON, "partial").auto_score = 0.0
        gradebook.db.commit()
    again = tfcourse("grade", LESSON, "--course", course, "--json")
    assert again.returncode == 0, again.stderr
    assert gradebook_scores(course) == ours == {"full": 9.0, "partial": 2.0}
    for student, path in autograded.items():
        text = path.read_text()
        assert "hidden=True" not in text and "HIDDEN TESTS" not in text
        assert json_reports(again.stdout)[student]["score"] == ours[student]
    assert tfcourse("feedback", LESSON, "--course", course).returncode == 0
    feedback = (course / "feedback" / "partial" / LESSON / f"{LESSON}.html").read_text()
    assert "hidden=True" not in feedback and "not implemented yet" in feedback


# --- crashes and interruptions -----------------------------------------------------------------------

SLOW_CELL = "import time\ntime.sleep(2)"


def slow_class(tmp_path_factory, size: int):
    """A course with ``size`` submissions that each take a few seconds; their expected scores."""
    course = released_course(tmp_path_factory)
    expected = {}
    for number in range(size):
        solved_ids = {"softmax", "attention_scores"} if number % 2 else solution_ids(course)
        notebook = solved(course, solved_ids)
        notebook.cells.insert(2, nbformat.v4.new_code_cell(SLOW_CELL))
        submit(course, f"student-{number}", notebook)
        expected[f"student-{number}"] = 3.0 if number % 2 else 9.0
    return course, expected


def start_grading(course) -> subprocess.Popen:
    """``tfcourse grade`` in its own process group, as a terminal runs it (Ctrl-C not ignored, even when these tests
    run in the background of a shell, which ignores it); its output goes to files."""
    log = open(course / "grade.log", "w")
    return subprocess.Popen([sys.executable, "-m", "tfcourse.cli", "grade", LESSON, "--course", course,
                             "--workers", "1", "--json"], stdout=log, stderr=log, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_journal(course, lines: int, process: subprocess.Popen) -> None:
    journal = course / ".tfcourse" / f"{LESSON}.journal.jsonl"
    deadline = time.monotonic() + 600
    while not (journal.exists() and len(journal.read_text().splitlines()) >= lines):
        assert process.poll() is None and time.monotonic() < deadline, (course / "grade.log").read_text()[-3000:]
        time.sleep(0.2)


def assert_finished_exactly_once(course, expected, stdout: str, journaled_before: int):
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert sorted(r["student"] for r in reports) == sorted(expected)  # each exactly once
    assert {r["student"]: r["score"] for r in reports} == expected
    assert gradebook_scores(course) == expected
    journal = (course / ".tfcourse" / f"{LESSON}.journal.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["student"] for line in journal) == sorted(expected)
    assert len(journal) >= journaled_before
    for student in expected:
        assert (course / "autograded" / student / LESSON / f"{LESSON}.ipynb").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_losing_and_duplicating_nothing(tmp_path_factory):
    course, expected = slow_class(tmp_path_factory, 6)
    first = start_grading(course)
    wait_for_journal(course, 2, first)
    first.kill()  # a crash: no chance to clean up
    first.wait()
    if ISOLATION.drops_to_nobody:
        assert sandboxed_processes_end(within=30), "a sandboxed process outlived the killed run"
    journaled = len((course / ".tfcourse" / f"{LESSON}.journal.jsonl").read_text().splitlines())
    assert 2 <= journaled < len(expected)
    second = tfcourse("grade", LESSON, "--course", course, "--workers", 1, "--json")
    assert second.returncode == 0, second.stderr
    assert_finished_exactly_once(course, expected, second.stdout, journaled)


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_the_next_run_finishes_it(tmp_path_factory):
    course, expected = slow_class(tmp_path_factory, 6)
    first = start_grading(course)
    wait_for_journal(course, 1, first)
    assert first.poll() is None, "the run ended before it could be interrupted; give it more submissions"
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    assert first.wait(timeout=120) == 130, (course / "grade.log").read_text()[-3000:]
    assert "run the same command again" in (course / "grade.log").read_text()
    second = tfcourse("grade", LESSON, "--course", course, "--workers", 2, "--json")
    assert second.returncode == 0, second.stderr
    assert_finished_exactly_once(course, expected, second.stdout, 1)
