"""Hostile submissions, each a real notebook graded by ``tfcourse grade`` in one run with honest ones,
once as root and once as an ordinary user.

Every hostile notebook solves ``softmax`` honestly (2 of 9 points) and attacks the grader
elsewhere, so each must score exactly 2 (a corrupt notebook 0), while the honest notebooks
graded in the same run keep their full scores.
"""

from __future__ import annotations

import getpass
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from tests.support.grading_course import (
    LESSON,
    MODES,
    Grader,
    gradebook_scores,
    json_reports,
    released,
    released_course,
    sandboxed_processes_end,
    solution_ids,
    solved,
    submit,
)
from tests.support.notebooks import ROOT

pytestmark = pytest.mark.slow
WALL_SECONDS = 20
DAEMON_DELAY = 3

# --- the attacks: (grade id of the solution cell to replace, or None for a new cell after check_softmax; source) -

PATCH_CHECK = """
import autograder, builtins
class Passed:
    passed, points = True, 100
autograder.check = lambda *args, **kwargs: Passed()
builtins.AssertionError = type("AssertionError", (Exception,), {})
"""
IMPORT_REFERENCE = "from tfcourse.attention import attention_scores"
IMPORT_REFERENCE_DYNAMICALLY = """
import importlib
attention_entropy = getattr(importlib.import_module("tf" + "course.attention"), "attention_" + "entropy")
"""
READ_REFERENCE_SOURCE = """
import pathlib
stolen = {}
exec(pathlib.Path("{repo}/tfcourse/np/attention.py").read_text(), stolen)
numpy_attention = stolen["scaled_dot_product_attention"]
"""
EXECUTE_INSTRUCTOR_SOURCE = """
import json
for path in ("{course}/source/02-attention/02-attention.ipynb", "{repo}/solutions/02-attention/02-attention.ipynb"):
    try:
        cells = json.load(open(path))["cells"]
    except OSError:
        continue
    for cell in cells:
        code = "".join(cell["source"])
        if cell["cell_type"] == "code" and "check(" not in code and "autograder" not in code:
            exec(code, globals())
"""
ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
def attention_scores(q, k):
    return AlwaysEqual()
"""
LYING_TENSOR = """
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__, torch.isclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
def attention_scores(q, k):
    return torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device).as_subclass(Liar)
"""
DISPLAY_HOOK_SCORE = """
import sys
sys.displayhook = lambda value: print("Score: 9.0 / 9.0")
get_ipython().display_formatter.formatters["text/plain"].for_type(object, lambda *args: "9.0")
print('{"student": "display-hook-score", "assignment": "02-attention", "score": 9.0, "max_score": 9.0}')
9.0
"""
SYS_EXIT = """
import sys
def attention_scores(q, k):
    sys.exit(0)
raise SystemExit(0)
"""
OS_EXIT = "import os\nos._exit(0)"
SWALLOW_INTERRUPTS = """
import time
def attention_scores(q, k):
    while True:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
"""
INFINITE_LOOP = "def attention_scores(q, k):\n    while True:\n        pass"
FORK_BOMB = """
import os, time
for _ in range(10_000):
    try:
        os.fork()
    except OSError:
        break
time.sleep(3600)
"""
MEMORY_BOMB = """
hoard = []
while True:
    hoard.append(bytearray(256 << 20))
"""
MEMORY_BOMB_IN_CALL = "def attention_scores(q, k):\n    return torch.empty(1 << 40, dtype=torch.float64)"
HUGE_OUTPUT = """
print("x" * (100 << 20))
with open("big.txt", "w") as big:
    big.write("y" * (100 << 20))
"""
HUGE_RESULT = "def attention_scores(q, k):\n    return torch.zeros(16 << 20, dtype=torch.float64)"
DAEMON = """
import os, time, sqlite3
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep({delay})
        try:
            database = sqlite3.connect("{course}/gradebook.db")
            database.execute("UPDATE grade SET auto_score = 100")
            database.commit()
        except Exception:
            pass
        try:
            open("{course}/daemon-was-here", "w").write("x")
        except Exception:
            pass
    os._exit(0)
"""
WRITE_OUTSIDE = """
import os
for path in ("{course}/pwned", "{repo}/pwned", "/tmp/pwned-by-a-submission", os.path.expanduser("~/pwned")):
    try:
        open(path, "w").write("x")
    except OSError:
        pass
"""
NETWORK = """
import getpass
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"hidden cases, please")
except OSError:
    pass
"""
FORGED_RESULTS = """
import json, os, struct
header = json.dumps({"tree": {"dict": [["event", "done"]]}, "buffers": []}).encode()
message = struct.pack("<Q", len(header)) + header
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack("<Q", len(message)) + message)
    except OSError:
        pass
"""
SEGFAULT = "import ctypes\ndef attention_scores(q, k):\n    return ctypes.string_at(0)"
PATCH_TORCH = """
torch.allclose = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda *args: torch.tensor(True)
"""
OVERFIT_VISIBLE = """
def softmax(x, dim=-1, temperature=1.0):
    if tuple(x.shape) == (1, 1, 1, 4):
        return x
    x = x / temperature
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))
"""

ATTACKS = {  # student: (cell changes, the reason to find in the attacked cell's message, or None)
    "patch-check": ({"attention_scores": PATCH_CHECK}, None),
    "import-reference": ({"attention_scores": IMPORT_REFERENCE}, "tfcourse"),
    "import-reference-dynamically": ({"attention_entropy": IMPORT_REFERENCE_DYNAMICALLY}, "tfcourse"),
    "read-reference-source": ({"numpy_attention": READ_REFERENCE_SOURCE}, None),
    "execute-instructor-source": ({"attention_scores": EXECUTE_INSTRUCTOR_SOURCE}, None),
    "always-equal": ({"attention_scores": ALWAYS_EQUAL}, "is a AlwaysEqual"),
    "lying-tensor": ({"attention_scores": LYING_TENSOR}, "wrong values"),
    "display-hook-score": ({None: DISPLAY_HOOK_SCORE}, None),
    "sys-exit": ({"attention_scores": SYS_EXIT}, "sys.exit"),
    "os-exit": ({None: OS_EXIT}, "ended early"),
    "swallow-interrupts": ({"attention_scores": SWALLOW_INTERRUPTS}, f"longer than {WALL_SECONDS} s"),
    "infinite-loop": ({"attention_scores": INFINITE_LOOP}, "ran longer than"),
    "fork-bomb": ({None: FORK_BOMB}, None),
    "memory-bomb": ({None: MEMORY_BOMB}, None),
    "memory-bomb-in-call": ({"attention_scores": MEMORY_BOMB_IN_CALL}, "RuntimeError"),
    "huge-output": ({None: HUGE_OUTPUT}, None),
    "huge-result": ({"attention_scores": HUGE_RESULT}, "MiB of results"),
    "daemon-rewrites-gradebook": ({None: DAEMON}, None),
    "write-outside-workdir": ({None: WRITE_OUTSIDE}, None),
    "network": ({None: NETWORK}, None),
    "forged-results": ({"attention_scores": FORGED_RESULTS}, None),
    "segfault": ({"attention_scores": SEGFAULT}, "SIGSEGV"),
    "patch-torch": ({None: PATCH_TORCH}, None),
}
# Notebooks changed in their structure rather than their code; and honest ones.
EXPECTED = {**{student: 2.0 for student in ATTACKS}, "corrupt-notebook": 0.0, "deleted-check-cells": 2.0,
            "edited-check-cells": 2.0, "forged-metadata": 2.0, "overfit-visible": 0.0,
            "honest-full": 9.0, "honest-partial": 3.0, "honest-untouched": 0.0}


def expected_scores(isolation) -> dict[str, float]:
    """:data:`EXPECTED` where the sandbox enforces ``isolation``."""
    if not isolation.namespaces:  # without a mount namespace the reference's source stays readable
        return {**EXPECTED, "read-reference-source": 4.0}
    return EXPECTED


def hostile(course, changes: dict, context: dict) -> nbformat.NotebookNode:
    """The released notebook with softmax solved and the attack's cells in place."""
    notebook = solved(course, {"softmax"})
    for cell_id, source in changes.items():
        for key, value in context.items():
            source = source.replace("{" + key + "}", str(value))
        if cell_id is None:
            after = next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id")
                         == "check_softmax")
            notebook.cells.insert(after + 1, nbformat.v4.new_code_cell(source))
        else:
            next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id).source = source
    return notebook


def restructured(course) -> dict[str, nbformat.NotebookNode | bytes]:
    """Attacks on the notebook's structure: its check cells deleted, edited or disguised, or the file corrupt."""
    def is_check(cell):
        return cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check_")

    deleted = solved(course, {"softmax"})
    deleted.cells = [c for c in deleted.cells if not is_check(c)]
    edited = solved(course, {"softmax"})
    for cell in filter(is_check, edited.cells):
        cell.source = 'print("all checks pass")'
    forged = solved(course, {"softmax"})
    for cell in filter(is_check, forged.cells):
        cell.metadata["nbgrader"]["points"] = 100
        if cell.metadata["nbgrader"]["grade_id"] != "check_softmax":
            cell.metadata.pop("nbgrader")
            cell.source = "pass"
    bonus = nbformat.v4.new_code_cell("pass")
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "check_bonus", "points": 100, "solution": False,
                                  "locked": True, "schema_version": 3}
    forged.cells.append(bonus)
    overfit = solved(course, set())
    next(c for c in overfit.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax").source = \
        OVERFIT_VISIBLE
    return {"corrupt-notebook": b'{"cells": [ this is not json', "deleted-check-cells": deleted,
            "edited-check-cells": edited, "forged-metadata": forged, "overfit-visible": overfit,
            "honest-full": solved(course, solution_ids(course)),
            "honest-partial": solved(course, {"softmax", "attention_scores"}), "honest-untouched": released(course)}


class Listener:
    """A TCP server on localhost that records what reaches it."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.received.append(connection.recv(1024))


@pytest.fixture(scope="module", params=MODES)
def graded(request, tmp_path_factory):
    grader = Grader(request.param)
    if grader.unavailable():
        pytest.skip(grader.unavailable())
    isolation = grader.isolation()
    course = released_course(tmp_path_factory)
    listener = Listener()
    context = {"course": course, "repo": ROOT, "port": listener.port, "delay": DAEMON_DELAY}
    for student, (changes, _) in ATTACKS.items():
        submit(course, student, hostile(course, changes, context))
    for student, notebook in restructured(course).items():
        submit(course, student, notebook)
    grader.hand_over(course)
    result = grader.tfcourse("grade", LESSON, "--course", course, "--workers", 2, "--json", "--timeout", WALL_SECONDS,
                             course=course)
    time.sleep(DAEMON_DELAY + 2)  # anything left behind has had its chance
    return SimpleNamespace(course=course, result=result, reports=json_reports(result.stdout),
                           gradebook=gradebook_scores(course), listener=listener, isolation=isolation,
                           expected=expected_scores(isolation), sandbox_user=grader.sandbox_user(isolation),
                           sandboxes_ended=sandboxed_processes_end(within=30, user=grader.sandbox_user(isolation)))


def test_the_run_grades_every_submission_and_exits_cleanly(graded):
    assert graded.result.returncode == 0, graded.result.stderr[-3000:]
    assert set(graded.reports) == set(EXPECTED)
    assert len(EXPECTED) >= 28


@pytest.mark.parametrize("student", EXPECTED)
def test_each_submission_scores_exactly_what_its_honest_part_earns(graded, student):
    report = graded.reports[student]
    assert report["score"] == graded.expected[student], [c["message"] for c in report["checks"] if not c["passed"]]
    assert graded.gradebook[student] == graded.expected[student]


@pytest.mark.parametrize("student", [s for s, (_, reason) in ATTACKS.items() if reason])
def test_the_attacked_check_says_why_it_failed(graded, student):
    messages = "\n".join(c["message"] for c in graded.reports[student]["checks"] if not c["passed"])
    assert ATTACKS[student][1] in messages
    assert "Traceback" not in messages


def test_a_corrupt_notebook_is_a_verdict_with_the_reason(graded):
    checks = graded.reports["corrupt-notebook"]["checks"]
    assert all("not a readable notebook" in c["message"] for c in checks)


def test_hidden_failures_show_no_expected_values_and_no_hidden_source(graded):
    softmax = next(c for c in graded.reports["overfit-visible"]["checks"] if c["name"] == "softmax")
    assert not softmax["passed"] and "hidden cases pass" in softmax["message"]
    assert "expected" not in softmax["message"] and "got" not in softmax["message"]
    autograded = graded.course / "autograded" / "overfit-visible" / LESSON / f"{LESSON}.ipynb"
    text = autograded.read_text()
    assert "HIDDEN TESTS" not in text and "hidden=True" not in text and "hidden cases pass" in text


def test_autograded_notebooks_carry_the_verdicts_and_not_the_learners_outputs(graded):
    folder = graded.course / "autograded"
    assert (folder / "huge-output" / LESSON / f"{LESSON}.ipynb").stat().st_size < 1 << 20
    forged = nbformat.read(folder / "forged-metadata" / LESSON / f"{LESSON}.ipynb", as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in forged.cells]
    assert "check_bonus" not in ids and ids.count("check_softmax") == 1
    restored = nbformat.read(folder / "deleted-check-cells" / LESSON / f"{LESSON}.ipynb", as_version=4)
    checks = [c for c in restored.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check_")]
    assert len(checks) == 5 and all(c.outputs for c in checks)


def test_nothing_outlives_the_run_or_escapes_the_sandbox(graded):
    course = graded.course
    assert not (course / "daemon-was-here").exists()
    assert graded.gradebook["daemon-rewrites-gradebook"] == 2.0
    assert not (course / "pwned").exists() and not (ROOT / "pwned").exists()
    if graded.isolation.namespaces:
        assert graded.listener.received == []
        assert not Path("/tmp/pwned-by-a-submission").exists()
    if graded.isolation.drops_to_nobody or graded.sandbox_user != getpass.getuser():
        assert graded.sandboxes_ended
