"""The instructor's nbgrader course directory, and the operations on it.

The course directory stays nbgrader's own: ``nbgrader_config.py`` says where everything
is, nbgrader's gradebook holds the grades, and ``release``, ``collect`` and ``feedback``
run nbgrader itself. ``tfcourse init`` writes a configuration that plain nbgrader also
uses (so ``nbgrader autograde`` keeps working on the same course), with the seed of the
hidden test cases in ``hidden_seed.txt``, readable by the instructor only.

    tfcourse init COURSE_DIR
    tfcourse release|collect|grade|feedback ASSIGNMENT --course COURSE_DIR
    tfcourse export --course COURSE_DIR [--format csv|canvas|moodle] [--output FILE]
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.grading.extra import MissingExtraError, require_grading_extra
from autograder.grading.submitted import MAX_NOTEBOOK_BYTES, MAX_SUBMISSION_BYTES, Submission, read_submission_folder
from autograder.grading.untrusted_files import UntrustedFileError, open_folder, read_file, read_folder, replace_folder
from autograder.seeds import HIDDEN_SEED_VARIABLE

REPOSITORY = Path(__file__).resolve().parents[2]  # the checkout holding solutions/ and the packages
SEED_FILE = "hidden_seed.txt"
FEEDBACK_EXPORTER = "autograder.grading.feedback.SafeFeedbackExporter"  # learners' HTML sanitised in feedback
CONFIG_TEMPLATE = '''"""This course's nbgrader settings (made by `tfcourse init`): nbgrader and tfcourse read them."""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)
HERE = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.OverwriteCells.add_missing_cells = True  # a deleted check cell is put back and graded, as tfcourse grade does
c.GenerateFeedback.exporter_class = {feedback_exporter!r}  # no learner's script reaches a feedback page

# The seed of the hidden test cases, shared by `tfcourse grade` and the kernels of `nbgrader autograde`.
# Keep the course directory private: whoever knows the seed can compute the hidden cases.
with open(os.path.join(HERE, {seed_file!r})) as seed:
    os.environ.setdefault({variable!r}, seed.read().strip())
'''


class CourseError(RuntimeError):
    """The course directory cannot be used as asked; the message says how to fix it."""


def _require_nbgrader() -> None:
    """Raise :class:`CourseError` saying which command installs the grading extra when it is missing."""
    try:
        require_grading_extra()
    except MissingExtraError as error:
        raise CourseError(str(error)) from None


class Course:
    """An nbgrader course directory, read through nbgrader's own configuration."""

    def __init__(self, root: str | Path):
        _require_nbgrader()
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config.loader import PyFileConfigLoader

        self.root = Path(root).resolve()
        if not (self.root / "nbgrader_config.py").is_file():
            raise CourseError(f"{self.root} is not an nbgrader course (no nbgrader_config.py): make one with "
                              f"`tfcourse init {root}`")
        saved = dict(os.environ)
        try:
            config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        finally:  # the configuration may set variables for nbgrader's kernels; they are not ours
            os.environ.clear()
            os.environ.update(saved)
        config.CourseDirectory.root = str(self.root)
        self.config = config
        self.directory = CourseDirectory(config=config)

    @property
    def db_url(self) -> str:
        return self.directory.db_url

    @property
    def course_id(self) -> str:
        return self.directory.course_id or "default_course"

    def _path(self, step: str, student: str, assignment: str) -> Path:
        return Path(self.directory.format_path(step, student, assignment))

    def source_notebooks(self, assignment: str) -> list[Path]:
        folder = self._path(self.directory.source_directory, ".", assignment)
        notebooks = sorted(folder.glob("*.ipynb"))
        if not notebooks:
            raise CourseError(f"no source notebooks in {folder}: is {assignment!r} one of this course's assignments?")
        return notebooks

    def source_notebook(self, assignment: str, name: str) -> Path:
        return self._path(self.directory.source_directory, ".", assignment) / f"{name}.ipynb"

    def is_released(self, assignment: str) -> bool:
        """Whether the assignment was generated into the course's release folder (``tfcourse release``)."""
        return any(self._path(self.directory.release_directory, ".", assignment).glob("*.ipynb"))

    def assignment_points(self, assignment: str) -> float:
        """The points of the assignment's grade cells, from its source notebooks (0 when it has none)."""
        import nbformat

        folder = self._path(self.directory.source_directory, ".", assignment)
        return sum(float(cell.metadata.nbgrader.get("points", 0)) for path in sorted(folder.glob("*.ipynb"))
                   for cell in nbformat.read(path, as_version=4).cells
                   if cell.metadata.get("nbgrader", {}).get("grade"))

    def release_notebook(self, assignment: str, name: str) -> Path:
        path = self._path(self.directory.release_directory, ".", assignment) / f"{name}.ipynb"
        if not path.is_file():
            raise CourseError(f"{path} does not exist: run `tfcourse release {assignment} --course {self.root}`")
        return path

    def _student_folders(self, step: str, assignment: str) -> list[tuple[str, Path]]:
        """``(student, folder)`` for each student's folder of ``assignment`` in ``step``, by student id
        (whatever stands at a folder's place is listed: a link or a file there is refused when read)."""
        folders = self._path(step, "*", assignment)
        students = folders.parent.parent
        if not students.is_dir():
            return []
        found = []
        for entry in os.scandir(students):
            folder = students / entry.name / folders.name
            # a student entry that is a link (even to where the grader cannot look) is listed, to be refused
            if not entry.name.startswith(".") and (entry.is_symlink() or os.path.lexists(folder)):
                found.append((entry.name, folder))
        return sorted(found)

    def submissions(self, assignment: str) -> list[tuple[str, Path]]:
        """``(student, folder)`` for each submission collected into the course, by student id."""
        return self._student_folders(self.directory.submitted_directory, assignment)

    def autograded_notebook(self, student: str, assignment: str, name: str) -> Path:
        return self._path(self.directory.autograded_directory, student, assignment) / f"{name}.ipynb"

    def read_submission(self, student: str, assignment: str, notebooks: list[str]) -> Submission:
        """The student's submitted folder, read as untrusted data: no link in it, or above it inside the
        course, is followed."""
        parts = self._parts(self.directory.submitted_directory, student, assignment)
        return read_submission_folder(self.root, parts, student, notebooks)

    def instructor_files(self, assignment: str) -> dict[str, bytes]:
        """The assignment's own files besides its notebooks (regular files at its top), which every autograded
        folder gets."""
        folder = self._path(self.directory.source_directory, ".", assignment)
        names = sorted(p.name for p in folder.iterdir() if p.suffix != ".ipynb" and p.name != ".ipynb_checkpoints")
        parts = self._parts(self.directory.source_directory, ".", assignment)
        return read_folder(self.root, parts, names, MAX_NOTEBOOK_BYTES, MAX_SUBMISSION_BYTES).files

    def write_autograded(self, student: str, assignment: str, files: dict[str, bytes]) -> None:
        """Make the student's autograded folder hold exactly ``files``, replacing (never writing through) what
        is there."""
        replace_folder(self.root, self._parts(self.directory.autograded_directory, student, assignment), files)

    def read_autograded(self, student: str, assignment: str, name: str) -> bytes | None:
        """The autograded file ``name`` as it is now; ``None`` when it is missing or not a plain file."""
        try:
            with open_folder(self.root, self._parts(self.directory.autograded_directory, student, assignment)) as fd:
                return read_file(fd, name, MAX_SUBMISSION_BYTES)
        except (UntrustedFileError, FileNotFoundError):
            return None

    def _parts(self, step: str, student: str, assignment: str) -> tuple[str, ...]:
        """The folder of ``step`` for the student and assignment, as names below the course root."""
        return self._path(step, student, assignment).relative_to(self.root).parts

    def feedback_folder(self, student: str, assignment: str) -> Path:
        return self._path(self.directory.feedback_directory, student, assignment)

    def feedback_without_exchange(self, assignment: str) -> list[str]:
        """Students whose feedback nbgrader cannot release: their submission did not come through the
        exchange, so it has no ``timestamp.txt`` and ``submission_secret.txt`` to address the feedback by."""
        return [student for student, folder in self._student_folders(self.directory.feedback_directory, assignment)
                if not all((folder / name).is_file() for name in ("timestamp.txt", "submission_secret.txt"))]

    def journal_path(self, assignment: str) -> Path:
        return self.root / ".tfcourse" / f"{assignment}.journal.jsonl"

    def hidden_seed(self) -> int:
        """The seed of the hidden cases: the environment's ``TFCOURSE_HIDDEN_SEED``, else the course's seed file."""
        value = os.environ.get(HIDDEN_SEED_VARIABLE)
        path = self.root / SEED_FILE
        if not value and path.is_file():
            value = path.read_text().strip()
        if not value:
            raise CourseError(f"no seed for the hidden cases: write one into {path} (and set {HIDDEN_SEED_VARIABLE} "
                              "to it for nbgrader autograde), or make the course with `tfcourse init`")
        try:
            return int(value)
        except ValueError:
            raise CourseError(f"the hidden-case seed {value!r} is not an integer") from None

    def hidden_paths(self) -> list[str]:
        """What submissions must not see: the course, the exchange, and what :func:`hidden_paths` names."""
        exchange = self.config.Exchange.get("root")
        return hidden_paths([self.root, Path(exchange) if exchange else None])


def hidden_paths(extra: list[Path | None]) -> list[str]:
    """What learners' code must not see while graded: the folders ``extra``, the repository's solutions and
    the reference's source. A path holding the Python environment itself stays visible."""
    import autograder.exercises
    import tfcourse

    candidates = [*extra, REPOSITORY / "solutions", Path(tfcourse.__file__).parent,
                  Path(autograder.exercises.__file__).parent]
    needed = [Path(sys.prefix).resolve(), Path(__file__).resolve().parents[1] / "harness"]
    return [str(path) for path in candidates
            if path is not None and path.is_dir() and not any(n.is_relative_to(path.resolve()) for n in needed)]


# --- the commands --------------------------------------------------------------------------------

def init_course(root: Path, solutions: Path, course_id: str = "tfcourse", exchange: Path | None = None) -> Course:
    """A new course at ``root`` holding every lesson of ``solutions`` as an assignment."""
    _require_nbgrader()
    from nbgrader.api import Gradebook

    if (root / "nbgrader_config.py").exists():
        raise CourseError(f"{root} is already a course (it has nbgrader_config.py)")
    lessons = sorted(p.name for p in solutions.glob("*") if (p / f"{p.name}.ipynb").is_file())
    if not lessons:
        raise CourseError(f"no lessons in {solutions} (expected <lesson>/<lesson>.ipynb): pass --solutions DIR")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    seed = root / SEED_FILE
    seed.write_text(f"{secrets.randbelow(2**31)}\n")
    seed.chmod(0o600)
    exchange = (exchange or root / "exchange").resolve()
    exchange.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(
        course_id=course_id, exchange=str(exchange), seed_file=SEED_FILE, variable=HIDDEN_SEED_VARIABLE,
        feedback_exporter=FEEDBACK_EXPORTER))
    for lesson in lessons:
        shutil.copytree(solutions / lesson, root / "source" / lesson, dirs_exist_ok=True)
    course = Course(root)
    with Gradebook(course.db_url, course.course_id) as gradebook:
        for lesson in lessons:
            gradebook.update_or_create_assignment(lesson)
    return course


def run_nbgrader(course: Course, *args: str) -> int:
    """Run ``nbgrader ARGS`` in the course directory (its own configuration applies); its exit status."""
    environment = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    command = [sys.executable, "-m", "nbgrader", *args]
    return subprocess.run(command, cwd=course.root, env=environment).returncode
