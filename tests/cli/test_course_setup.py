"""Setting up a course: ``tfcourse init`` without the grading extra, and moving a course's exchange."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from autograder.grading.course import Course, init_course
from tests.support.notebooks import ROOT

LESSON = "02-attention"
# Imported first by the interpreter it is put before: nbgrader cannot be imported, as where it is not installed.
BLOCK_NBGRADER = '''import sys

class _NoNbgrader:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "nbgrader":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _NoNbgrader())
'''


def tfcourse(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    if pythonpath is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), environment.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "tfcourse.cli", *args], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=120)


def test_init_without_nbgrader_names_the_command_that_installs_it(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_NBGRADER)
    result = tfcourse("init", str(tmp_path / "course"), pythonpath=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "nbgrader" in result.stderr and "bash scripts/setup.sh grading" in result.stderr
    assert not (tmp_path / "course").exists()  # nothing half-made


def test_the_block_hides_nbgrader(tmp_path):
    """The test above means something only if nbgrader really cannot be imported under the block."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_NBGRADER)
    environment = dict(os.environ, PYTHONPATH=str(tmp_path))
    hidden = subprocess.run([sys.executable, "-c", "import nbgrader"], capture_output=True, text=True,
                            env=environment, timeout=60)
    assert hidden.returncode != 0 and "No module named 'nbgrader'" in hidden.stderr


def test_exchange_is_changed_after_init(tmp_path):
    shutil.copytree(ROOT / "solutions" / LESSON, tmp_path / "solutions" / LESSON)
    course = init_course(tmp_path / "course", tmp_path / "solutions")
    before = (course.root / "nbgrader_config.py").read_text()
    shared = tmp_path / "srv" / "exchange"

    result = tfcourse("exchange", str(course.root), str(shared))

    assert result.returncode == 0, result.stderr
    assert Course(course.root).config.Exchange.root == str(shared)  # what nbgrader itself reads
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # nbgrader's shared mode, sticky as /tmp
    after = (course.root / "nbgrader_config.py").read_text()
    changed = [(old, new) for old, new in zip(before.splitlines(), after.splitlines()) if old != new]
    assert len(changed) == 1 and changed[0][1] == f"c.Exchange.root = {str(shared)!r}"
    assert "release its assignments again" in result.stdout and result.stderr == ""


def test_an_existing_private_exchange_is_kept_and_named(tmp_path):
    shutil.copytree(ROOT / "solutions" / LESSON, tmp_path / "solutions" / LESSON)
    course = init_course(tmp_path / "course", tmp_path / "solutions")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)

    result = tfcourse("exchange", str(course.root), str(private))

    assert result.returncode == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert Course(course.root).config.Exchange.root == str(private)
    assert f"chmod 1777 {private}" in result.stderr


def test_exchange_of_a_folder_that_is_no_course_fails_with_the_reason(tmp_path):
    result = tfcourse("exchange", str(tmp_path), str(tmp_path / "exchange"))
    assert result.returncode == 2 and "not an nbgrader course" in result.stderr
    assert not (tmp_path / "exchange").exists()
