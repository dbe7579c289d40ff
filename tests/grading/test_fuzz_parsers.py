"""Every parser on the trusted side, fed arbitrary and mutated input: none may raise anything but its
documented error, which the pipeline turns into the submission's verdict.

The parsers: the result decoder (``wire.loads``), the notebook reader (``read_submission``, then
``build_program`` and ``autograded_notebook`` on what it accepts), the static scan
(``scan_code``), the cell transformation (``LearnerSource``), the readers of a submission's
fields (``parse_timestamp``, ``check_student_id``) and the journal (``JournalEntry.from_json``).
"""

from __future__ import annotations

import json
import time
import tracemalloc

import nbformat
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autograder.grading.gradebook import Journal, JournalEntry
from autograder.grading.pipeline import grade_submitted, notebook_bytes
from autograder.grading.sandbox import SandboxError
from autograder.grading.submitted import Submission
from autograder.harness.confine import Limits
from autograder.grading.plan import LearnerSource, NotebookPlan
from autograder.grading.submission import UnreadableNotebook, autograded_notebook, build_program, read_submission
from autograder.grading.submitted import InvalidField, check_student_id, parse_timestamp
from autograder.harness import wire
from autograder.harness.forbidden import UnscannableCode, scan_code
from tests.support.notebooks import ROOT, solution_notebook

LESSON = "02-attention"
FAST = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30) | \
    st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=30)


# --- the result decoder ----------------------------------------------------------------------------

def decodes_or_refuses(message: bytes) -> None:
    try:
        wire.loads(message)
    except wire.WireError:
        pass


@FAST
@given(st.binary(max_size=512))
def test_the_decoder_refuses_arbitrary_bytes_with_a_wire_error(message):
    decodes_or_refuses(message)
    decodes_or_refuses(wire.HEADER.pack(len(message)) + message)


wire_tags = st.sampled_from(["list", "tuple", "set", "dict", "complex", "bytes", "dtype", "device", "size",
                             "opaque", "tensor", "ndarray", "eval", "__class__"])
wire_bodies = st.recursive(
    json_scalars | st.sampled_from(["float32", "int64", "<f8", "|b1", "cpu", "cuda:7"]),
    lambda inner: st.lists(inner, max_size=4) | st.builds(lambda tag, body: {tag: body}, wire_tags, inner) |
    st.fixed_dictionaries({"dtype": inner, "shape": st.lists(st.integers(-2, 2 ** 70), max_size=4),
                           "device": inner, "buffer": st.integers(-1, 3)}),
    max_leaves=25)


@FAST
@given(wire_bodies, st.lists(st.binary(max_size=64), max_size=3))
def test_the_decoder_refuses_hostile_trees_with_a_wire_error(tree, buffers):
    header = json.dumps({"tree": tree, "buffers": [len(b) for b in buffers]}).encode()
    decodes_or_refuses(wire.HEADER.pack(len(header)) + header + b"".join(buffers))


plain_data = st.recursive(
    json_scalars | st.binary(max_size=16) | st.complex_numbers(allow_nan=False) |
    st.builds(lambda n: torch.arange(n, dtype=torch.float32), st.integers(0, 6)),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) |
    st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)
mutations = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "number"]), st.integers(0, 1 << 16),
                               st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)


def mutated(message: bytes, changes: list) -> bytes:
    data = bytearray(message)
    for kind, where, chunk in changes:
        at = where % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= chunk[0] or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = chunk
        else:  # a number in the header replaced by a huge or negative one
            data = bytearray(bytes(data).replace(b"1", str(-(10 ** 40) if chunk[0] % 2 else 10 ** 40).encode(), 1))
    return bytes(data)


@FAST
@given(plain_data, mutations)
def test_the_decoder_round_trips_plain_data_and_refuses_its_mutations_with_a_wire_error(value, changes):
    message = wire.dumps(value)
    wire.loads(message)
    decodes_or_refuses(mutated(message, changes))


@pytest.mark.parametrize("tree", [
    {"tensor": {"dtype": "float32", "shape": [2 ** 32, 2 ** 32], "device": "cpu", "buffer": 0}},
    {"list": [{"tensor": {"dtype": "uint8", "shape": [4], "device": "cpu", "buffer": 0}}] * 1000},
    {"complex": [10 ** 400, 0]},
    {"list": [0] * (wire.MAX_OBJECTS + 1)},
    {"size": [2 ** 64]},
])
def test_the_decoder_bounds_what_a_message_decodes_into(tree):
    header = json.dumps({"tree": tree, "buffers": [4]}).encode()
    with pytest.raises(wire.WireError):
        wire.loads(wire.HEADER.pack(len(header)) + header + b"\0" * 4)


def tensor_message(size: int, references: int) -> bytes:
    """A message of one ``size``-byte buffer that ``references`` tensors claim."""
    tensor = {"tensor": {"dtype": "uint8", "shape": [size], "device": "cpu", "buffer": 0}}
    header = json.dumps({"tree": {"list": [tensor] * references}, "buffers": [size]}).encode()
    return wire.HEADER.pack(len(header)) + header + bytes(size)


@pytest.mark.parametrize("references", [1, 1000])
def test_the_decoder_holds_at_most_the_message_and_what_it_decodes_into(references):
    message = tensor_message(32 << 20, references)
    tracemalloc.start()
    try:
        wire.loads(message)
    except wire.WireError:
        assert references > 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40 << 20


def test_the_decoder_refuses_a_header_too_big_at_once():
    header = b"[" * (wire.MAX_HEADER_BYTES + 1)
    started = time.monotonic()
    with pytest.raises(wire.WireError):
        wire.loads(wire.HEADER.pack(len(header)) + header)
    assert time.monotonic() - started < 1


# --- the notebook reader ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plan():
    release = ROOT / "exercises" / LESSON / f"{LESSON}.ipynb"
    if not release.exists():
        pytest.skip(f"{release} is not generated yet")
    return NotebookPlan(solution_notebook(LESSON), release, 1234, [torch.device("cpu")])


def graded_as_data(plan, data: bytes) -> None:
    """Read, plan and write back a submission as the pipeline does; only UnreadableNotebook may stop it."""
    try:
        notebook = read_submission(data, f"{LESSON}.ipynb")
    except UnreadableNotebook:
        return
    build_program(plan, notebook)
    verdicts = {grade_id: (False, "x\udc80") for grade_id in plan.graded}
    notebook_bytes(autograded_notebook(plan, notebook, verdicts))


@FAST
@given(st.binary(max_size=256))
def test_the_notebook_reader_refuses_arbitrary_bytes(plan, data):
    graded_as_data(plan, data)


grade_ids = st.sampled_from(["softmax", "check_softmax", "intro", "attention_scores", "bonus", ""]) | \
    st.text(max_size=8)
hostile_cells = st.fixed_dictionaries(
    {"cell_type": st.sampled_from(["code", "markdown", "raw", "heading"]) | json_values,
     "source": st.text(max_size=40) | st.lists(st.text(max_size=10), max_size=3) | json_values,
     "metadata": st.fixed_dictionaries({"nbgrader": st.fixed_dictionaries(
         {"grade_id": grade_ids | json_values, "points": json_values, "solution": json_values,
          "grade": json_values, "locked": json_values})}) | json_values},
    optional={"outputs": json_values, "execution_count": json_values, "id": json_values})


@FAST
@given(st.lists(hostile_cells, max_size=8), json_values, st.sampled_from([4, 3, 5, 10 ** 30, "4"]))
def test_the_notebook_reader_refuses_or_grades_arbitrary_notebook_json(plan, cells, metadata, version):
    document = {"cells": cells, "metadata": metadata, "nbformat": version, "nbformat_minor": 5}
    graded_as_data(plan, json.dumps(document).encode())


@pytest.mark.parametrize("document", [
    b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    json.dumps({"cells": [{}] * 10_000, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
    b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": ' + b"9" * 5000 + b"}",
    b"\xff\xfe" + "{}".encode("utf-16-le"),
])
def test_the_notebook_reader_refuses_absurd_json(plan, document):
    with pytest.raises(UnreadableNotebook):
        read_submission(document, f"{LESSON}.ipynb")


class FailingSandbox:
    """A sandbox whose run raises ``error``, as a failure on the trusted side would."""

    def __init__(self, error: BaseException):
        self.error = error

    def run(self, job):
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("boom"), MemoryError(), RecursionError(), OverflowError("big"),
                                   UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")])
def test_any_other_failure_while_grading_a_notebook_is_its_verdict(plan, error):
    submission = Submission("learner")
    submission.contents.files[f"{LESSON}.ipynb"] = nbformat.writes(nbformat.read(
        ROOT / "exercises" / LESSON / f"{LESSON}.ipynb", as_version=4)).encode()
    grades, autograded = grade_submitted(FailingSandbox(error), plan, submission, f"{LESSON}.ipynb", LESSON, Limits())
    assert grades.score.score == 0 and grades.score.max_score > 0
    assert all(type(error).__name__ in check.message for check in grades.score.checks)
    notebook_bytes(autograded)


def test_a_failure_of_the_sandbox_itself_leaves_the_submission_ungraded(plan):
    submission = Submission("learner")
    submission.contents.files[f"{LESSON}.ipynb"] = (ROOT / "exercises" / LESSON / f"{LESSON}.ipynb").read_bytes()
    with pytest.raises(SandboxError):
        grade_submitted(FailingSandbox(SandboxError("gone")), plan, submission, f"{LESSON}.ipynb", LESSON, Limits())


# --- the static scan and the cell transformation ----------------------------------------------------

def scanned(source: str) -> None:
    try:
        assert isinstance(scan_code(source, ("torch.softmax",)), list)
    except UnscannableCode:
        pass


@FAST
@given(st.text(max_size=300))
def test_the_scan_and_the_cell_transformation_take_any_text(source):
    scanned(source)
    scanned(LearnerSource()(source))
    build_free = LearnerSource(budget=0)(source)
    assert isinstance(build_free, str)


@pytest.mark.parametrize("source", [
    "x = " + "-" * 100_000 + "1", "x = " + "+".join(["a"] * 200_000), "x = a" + ".b" * 100_000,
    "if a:\n    pass\n" + "elif a:\n    pass\n" * 50_000, "x = " + "(" * 300 + ")" * 300, "x = 1\0",
])
def test_the_scan_refuses_deeply_nested_code_with_its_error(source):
    scanned(source)


def test_the_cell_transformation_is_bounded_in_time():
    cell = "\n".join(f"!echo {i}" for i in range(20_000))
    started = time.monotonic()
    source = LearnerSource()(cell)
    assert time.monotonic() - started < 2
    assert source.splitlines()[0] == "get_ipython().system('echo 0')"


# --- a submission's fields, and the journal --------------------------------------------------------

@FAST
@given(st.binary(max_size=80) | st.from_regex(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?( [A-Z+:0-9-]{1,6})?",
                                            fullmatch=True).map(str.encode))
def test_the_timestamp_reader_refuses_with_invalid_field(data):
    try:
        assert parse_timestamp(data)
    except InvalidField:
        pass


@FAST
@given(st.text(max_size=120))
def test_student_ids_are_plain_names_or_refused(name):
    try:
        assert check_student_id(name) == name and name.isprintable() and "," not in name and " " not in name
    except InvalidField as error:
        assert str(error).isprintable()


@FAST
@given(st.lists(st.text(max_size=60) | json_values.map(json.dumps), max_size=5))
def test_the_journal_skips_lines_it_cannot_use(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("journal") / "journal.jsonl"
    path.write_text("\n".join(lines).encode("utf-8", "replace").decode())
    assert all(isinstance(entry, JournalEntry) for entry in Journal(path).entries().values())


def test_every_notebook_written_back_is_valid_utf8(plan):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("lone \ud800 surrogate")])
    data = notebook_bytes(autograded_notebook(plan, notebook, {}))
    assert "lone ? surrogate" in data.decode("utf-8")
