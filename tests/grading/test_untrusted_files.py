"""Reading a learner's whole folder without following anything in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.grading.submitted import MAX_HELPER_BYTES, read_learner_folder, read_submission_folder
from autograder.grading.untrusted_files import TreeLimits, read_tree


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    (root / "pkg" / "inner").mkdir(parents=True)
    (root / "nb.ipynb").write_text("{}")
    (root / "helpers.py").write_text("X = 1\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "inner" / "data.json").write_text("[]")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text("{}")
    (root / "__pycache__").mkdir()
    (root / "helpers.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "link.py")
    os.symlink(tmp_path, root / "pkg" / "outside", target_is_directory=True)
    os.link(tmp_path / "secret.txt", root / "hard.txt")
    os.mkfifo(root / "pipe")
    return root


def test_the_regular_files_are_read_by_relative_path_and_nothing_else(folder):
    contents = read_tree(folder.parent, (folder.name,), TreeLimits(1 << 20, 1 << 20))
    assert set(contents.files) == {"nb.ipynb", "helpers.py", "pkg/__init__.py", "pkg/inner/data.json"}
    assert set(contents.refused) == {"link.py", "pkg/outside", "hard.txt", "pipe"}
    assert "symbolic link" in contents.refused["link.py"] and "hard link" in contents.refused["hard.txt"]
    assert "pkg/outside is a symbolic link" in contents.refused["pkg/outside"]
    assert all(b"secret" not in data for data in contents.files.values())


def test_the_limits_bound_entries_depth_and_bytes(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    for number in range(5):
        (tmp_path / f"f{number}.txt").write_text("12345")
    contents = read_tree(tmp_path, (), TreeLimits(5, 12, entries=5, depth=2))
    assert "nested 2 folders deep" in contents.refused["a/b"]
    assert list(contents.files) == ["f0.txt", "f1.txt"]  # the third would pass 12 bytes in all
    assert "larger than" in contents.refused["f2.txt"] and "at most" not in contents.refused["f2.txt"]
    assert "5 files and folders in all" in contents.refused["f3.txt"]


def test_a_submission_gives_its_other_files_to_the_code_and_names_what_it_refused(folder):
    submission = read_submission_folder(folder.parent, (folder.name,), "alice", ["nb.ipynb"])
    assert set(submission.helpers) == {"helpers.py", "pkg/__init__.py", "pkg/inner/data.json"}
    assert len(submission.problems) == 4
    changed = read_submission_folder(folder.parent, (folder.name,), "alice", ["nb.ipynb"])
    changed.helpers["helpers.py"] = b"X = 2\n"
    assert changed.digest(["nb.ipynb"]) != submission.digest(["nb.ipynb"])


def test_helpers_past_their_budget_are_named(tmp_path):
    (tmp_path / "nb.ipynb").write_text("{}")
    (tmp_path / "big.bin").write_bytes(b"\0" * (MAX_HELPER_BYTES - 10))
    (tmp_path / "more.bin").write_bytes(b"\0" * 20)
    submission = read_learner_folder(tmp_path / "nb.ipynb")
    assert set(submission.helpers) == {"big.bin"}
    assert any("more.bin was not given to your code" in problem for problem in submission.problems)
