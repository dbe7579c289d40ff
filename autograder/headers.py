"""Each exercise's header line and nbgrader points, written from its specification.

An exercise's points, difficulty and minutes live in its :class:`~autograder.exercise.Exercise`
(``autograder/exercises/*.py``). Its lesson's solutions notebook shows them twice: in the
header line of the task cell (nbgrader ``grade_id`` ``task_<name>``)::

    *Difficulty ★★☆ · about 15 minutes · 2 points*

and as nbgrader's ``points`` of the graded check cell (``check_<name>``). The task cell's
next paragraph links to the section of the book that teaches the exercise, the one labelled
``(teach-<name>)=`` in ``book/<lesson>.md``::

    Where the book teaches it: [online](BOOK_URL/book/<lesson>.html#teach-<name>) ·
    [in your own build](../../_build/html/book/<lesson>.html#teach-<name>)

``BOOK_URL`` is the published book (``html.baseurl`` in ``_config.yml``); the second link
is relative to ``exercises/<lesson>/``, for a clone with the book built by
``bash scripts/build_book.sh``. After editing a spec, run in the repository root::

    python -m autograder.headers            # rewrite every lesson's solutions notebook
    python -m autograder.headers --check    # change nothing; exit 1 where a notebook differs

then ``nbgrader generate_assignment <lesson> --force`` for each lesson it rewrote. The
solutions notebooks carry no nbgrader checksums (the learners' notebooks get theirs when
they are generated), so rewriting a locked cell's source there is safe.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from autograder.exercise import Exercise
from autograder.registry import LESSONS, lesson_exercises

MAX_DIFFICULTY = 3
# A task cell's header line, whatever values it holds: the line that sync() rewrites.
HEADER_LINE = re.compile(r"^\*Difficulty .*\*$", re.MULTILINE)
# The published book (html.baseurl in _config.yml) and the task cell's paragraph linking to it.
BOOK_URL = "https://tfcourse.github.io/tfcourse/"
BOOK_LINK_LINE = re.compile(r"^Where the book teaches it: .*$", re.MULTILINE)


class NotebookLayoutError(ValueError):
    """A solutions notebook whose task and graded cells do not pair up with its lesson's exercises."""


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def header_line(exercise: Exercise) -> str:
    """The header line of ``exercise``'s task cell: ``*Difficulty ★★☆ · about 15 minutes · 2 points*``."""
    if not 1 <= exercise.difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"{exercise.name}: difficulty {exercise.difficulty} is not from 1 to {MAX_DIFFICULTY}")
    stars = "★" * exercise.difficulty + "☆" * (MAX_DIFFICULTY - exercise.difficulty)
    return f"*Difficulty {stars} · about {_count(exercise.minutes, 'minute')} · {_count(exercise.points, 'point')}*"


def teaching_anchor(name: str) -> str:
    """The HTML id of the section labelled ``(teach-<name>)=``: Sphinx lowercases a label and
    turns every run of other characters than letters and digits into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", f"teach-{name}".lower()).strip("-")


def book_link_line(exercise: Exercise) -> str:
    """The task cell's links to the book's section on ``exercise``, online and in a local build."""
    page = f"book/{exercise.lesson}.html#{teaching_anchor(exercise.name)}"
    return f"Where the book teaches it: [online]({BOOK_URL}{page}) · [in your own build](../../_build/html/{page})"


def _write_book_link(source: str, header_end: int, line: str) -> str:
    """``source`` with its book link paragraph set to ``line`` (added after the header when missing)."""
    existing = BOOK_LINK_LINE.search(source)
    if existing is None:
        return f"{source[:header_end]}\n\n{line}{source[header_end:]}"
    return source[: existing.start()] + line + source[existing.end() :]


def solutions_notebook(lesson: str) -> Path:
    """The lesson's nbgrader source notebook, relative to the repository root."""
    return Path("solutions", lesson, f"{lesson}.ipynb")


def sync(path: Path, write: bool = False) -> list[str]:
    """What differs between a solutions notebook (named after its lesson) and its lesson's specs.

    Returns a line for each task header and each check cell's points that the specs would
    change; with ``write``, the notebook is rewritten to the specs' values and nothing else
    in it changes. Raises :class:`NotebookLayoutError` unless each exercise has exactly one
    task cell, holding one header line, and one graded check cell, and every graded cell
    checks an exercise.
    """
    import nbformat

    from autograder.notebook import graded_cells

    lesson = Path(path).stem
    if lesson not in LESSONS:
        raise NotebookLayoutError(f"{path}: no lesson {lesson!r} is specified in autograder/exercises")
    nb = nbformat.read(path, as_version=4)
    tasks: dict[str, list] = {}
    graded: dict[str, list] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            tasks.setdefault(cell.metadata.get("nbgrader", {}).get("grade_id"), []).append(cell)
    for cell in graded_cells(nb):
        graded.setdefault(cell.metadata.nbgrader.get("grade_id"), []).append(cell)
    exercises = lesson_exercises(lesson)
    problems = [f"graded cell {grade_id!r} checks no exercise of the lesson"
                for grade_id in sorted(graded.keys() - {f"check_{exercise.name}" for exercise in exercises}, key=str)]
    differences = []
    for exercise in exercises:
        name, line = exercise.name, header_line(exercise)
        task, check = tasks.get(f"task_{name}", []), graded.get(f"check_{name}", [])
        found = [header for cell in task for header in HEADER_LINE.finditer(cell.source)]
        if len(task) != 1 or len(found) != 1 or len(check) != 1:
            problems.append(f"{name}: needs one markdown cell task_{name} holding one line {line} "
                            f"and one graded code cell check_{name}")
            continue
        (task,), (header,), (check,) = task, found, check
        if header.group() != line:
            differences.append(f"{path}: {name}: header {header.group()} -> {line}")
            task.source = task.source[:header.start()] + line + task.source[header.end():]
        link, links = book_link_line(exercise), BOOK_LINK_LINE.findall(task.source)
        if links != [link]:
            differences.append(f"{path}: {name}: book link {links[0] if links else '(none)'} -> {link}")
            task.source = _write_book_link(task.source, header.start() + len(line), link)
        if check.metadata.nbgrader.get("points") != exercise.points:
            differences.append(f"{path}: {name}: points {check.metadata.nbgrader.get('points')} -> {exercise.points}")
            check.metadata.nbgrader["points"] = exercise.points
    if problems:
        raise NotebookLayoutError("\n".join(f"{path}: {problem}" for problem in problems))
    if write and differences:
        nbformat.write(nb, path)
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.headers",
        description="Write each exercise's points, difficulty and minutes from its spec (autograder/exercises) "
                    "into the task headers and check cells' nbgrader points of the solutions notebooks, "
                    "and each task's links to the book's section that teaches it.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a notebook differs from its specs")
    parser.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                        help="solutions notebooks (default: every lesson's, solutions/<lesson>/<lesson>.ipynb)")
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks or [solutions_notebook(lesson) for lesson in LESSONS]:
        try:
            differences = sync(path, write=not args.check)
        except (ValueError, OSError) as error:  # a layout problem, or an unreadable notebook
            print(error, file=sys.stderr)
            failed = True
            continue
        for difference in differences:
            print(difference)
        if differences and args.check:
            print(f"{path}: differs from its specs: run `python -m autograder.headers {path}`", file=sys.stderr)
            failed = True
        elif differences:
            print(f"{path}: rewritten: now run `nbgrader generate_assignment {path.stem} --force`")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
