"""What to re-teach: a class's results on one assignment, per exercise, as an HTML page with figures.

Read from what ``tfcourse grade`` recorded: the grading journal (each check's verdict, the
report the learner saw and the named mistake, :mod:`autograder.grading.mistakes`) and
nbgrader's gradebook (each submission's total, manual grades included). For each exercise
the page gives the pass rate ``passed / graded``, how many students scored each number of
points, and the named mistakes ranked by how many students made them, each with one
anonymised example of the learner's report (the student's id replaced; the report's case
table and hints left out). Everything that comes from a submission is escaped, and examples
sit in ``<pre>`` blocks, which MathJax does not typeset. The page loads MathJax from the copy
written beside it (:mod:`autograder.grading.mathjax`), so it reads the same offline.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading.course import Course
from autograder.grading.gradebook import Journal, JournalEntry
from autograder.grading.mathjax import copy_mathjax, mathjax_tags

UNNAMED = "not named (graded before mistakes were recorded)"
ANONYMOUS = "STUDENT"
EXAMPLE_END = ("Cases:", "Stuck?", "Next hint:", "That was the last hint")  # the report's table and footer


@dataclass
class MistakeCount:
    """A named mistake of one exercise: how many students made it, and one anonymised report."""

    name: str
    students: int
    example: str


@dataclass
class ExerciseSummary:
    """One exercise across the class: ``scores`` maps points to how many students got them."""

    name: str
    graded: int
    passed: int
    max_points: float
    scores: dict[float, int]
    mistakes: list[MistakeCount] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class ClassReport:
    """An assignment's report: every exercise, and each graded submission's total score."""

    assignment: str
    exercises: list[ExerciseSummary]
    totals: list[float]
    max_score: float


def class_report(course: Course, assignment: str) -> ClassReport:
    """The report on ``assignment`` from the course's journal and gradebook; ``LookupError`` when nothing of
    it was graded by ``tfcourse grade``."""
    entries = Journal(course.journal_path(assignment)).entries()
    if not entries:
        raise LookupError(f"no submission of {assignment!r} was graded yet: run `tfcourse grade {assignment}` first")
    totals = _gradebook_totals(course, assignment, entries)
    maximum = max(sum(n.score.max_score for n in entry.notebooks) for entry in entries.values())
    return ClassReport(assignment, _exercises(entries), totals, maximum)


def _gradebook_totals(course: Course, assignment: str, entries: dict[str, JournalEntry]) -> list[float]:
    """Each journaled submission's total in the gradebook (manual grades count), else the journal's."""
    from nbgrader.api import Gradebook, MissingEntry

    totals = []
    with Gradebook(course.db_url, course.course_id) as gradebook:
        for student, entry in sorted(entries.items()):
            try:
                totals.append(gradebook.find_submission(assignment, student).score)
            except MissingEntry:
                totals.append(sum(n.score.score for n in entry.notebooks))
    return totals


def _exercises(entries: dict[str, JournalEntry]) -> list[ExerciseSummary]:
    summaries: dict[str, ExerciseSummary] = {}
    made: dict[str, Counter] = {}
    examples: dict[tuple[str, str], str] = {}
    for student, entry in sorted(entries.items()):
        for notebook in entry.notebooks:
            for check in notebook.score.checks:
                summary = summaries.setdefault(check.name, ExerciseSummary(check.name, 0, 0, check.max_points, {}))
                summary.graded += 1
                summary.passed += check.passed
                summary.scores[check.points] = summary.scores.get(check.points, 0) + 1
                if check.passed:
                    continue
                names = set(notebook.mistakes.get(check.name) or [UNNAMED])
                made.setdefault(check.name, Counter()).update(names)
                example = anonymised(check.message, student)
                for name in names:
                    key = (check.name, name)
                    if key not in examples or len(example) < len(examples[key]):
                        examples[key] = example
    for name, summary in summaries.items():
        ranked = sorted(made.get(name, Counter()).items(), key=lambda item: (-item[1], item[0]))
        summary.mistakes = [MistakeCount(mistake, count, examples[(name, mistake)]) for mistake, count in ranked]
    return list(summaries.values())


def anonymised(message: str, student: str) -> str:
    """The explaining part of a learner's report (up to its case table), with the student's id replaced
    wherever it stands as a word of its own."""
    lines = []
    for line in message.splitlines():
        if line.strip().startswith(EXAMPLE_END):
            break
        lines.append(line)
    text = "\n".join(lines).strip()
    whole_word = rf"(?<![A-Za-z0-9]){re.escape(student)}(?![A-Za-z0-9])"
    return re.sub(whole_word, ANONYMOUS, text, flags=re.IGNORECASE) if student else text


# --- the page and its figures ------------------------------------------------------------------

def write_report(report: ClassReport, output: Path) -> Path:
    """Write ``index.html``, its PNG figures and MathJax into ``output``; the page's path."""
    output.mkdir(parents=True, exist_ok=True)
    figures = _write_figures(report, output)
    copy_mathjax(output)
    page = output / "index.html"
    page.write_text(_page(report, figures), encoding="utf-8")
    return page


def figure_name(exercise: str) -> str:
    """The file name of an exercise's mistakes figure (any character outside ``[A-Za-z0-9_-]`` replaced)."""
    return "mistakes-" + re.sub(r"[^A-Za-z0-9_-]", "_", exercise) + ".png"


def _write_figures(report: ClassReport, output: Path) -> dict[str, str]:
    """The figures as PNG files: pass rates, the total scores, and each exercise's ranked mistakes."""
    from matplotlib.figure import Figure

    written = {}
    names = [e.name for e in report.exercises]
    figure = Figure(figsize=(7, 0.5 + 0.4 * len(names)), layout="constrained")
    axes = figure.add_subplot()
    axes.barh(names[::-1], [100 * e.pass_rate for e in report.exercises][::-1], color="#3b7dd8")
    axes.set_xlim(0, 100)
    axes.set_xlabel("students who passed (%)")
    written["pass rates"] = _save(figure, output / "pass-rates.png")
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.add_subplot()
    axes.hist(report.totals, bins=range(math.ceil(report.max_score) + 2), color="#3b7dd8", edgecolor="white",
              align="left")
    axes.set_xlabel(f"score (out of {report.max_score:g})")
    axes.set_ylabel("students")
    axes.yaxis.get_major_locator().set_params(integer=True)
    written["scores"] = _save(figure, output / "scores.png")
    for exercise in report.exercises:
        if exercise.mistakes:
            written[exercise.name] = _save(_mistakes_figure(exercise), output / figure_name(exercise.name))
    return written


def _mistakes_figure(exercise: ExerciseSummary):
    from matplotlib.figure import Figure

    mistakes = exercise.mistakes[::-1]
    figure = Figure(figsize=(7, 0.6 + 0.35 * len(mistakes)), layout="constrained")
    axes = figure.add_subplot()
    axes.barh([_shortened(m.name) for m in mistakes], [m.students for m in mistakes], color="#d8643b")
    axes.set_xlabel("students")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_title(exercise.name)
    return figure


def _shortened(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _save(figure, path: Path) -> str:
    figure.savefig(path, dpi=100)
    return path.name


STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;margin:0;font-size:.85rem}img{max-width:100%}"""


def _page(report: ClassReport, figures: dict[str, str]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(x.name)}</td><td>{100 * x.pass_rate:.0f}% ({x.passed}/{x.graded})</td>"
                   f"<td>{e(_distribution(x))}</td></tr>" for x in report.exercises)
    sections = "".join(_exercise_section(x, figures.get(x.name)) for x in report.exercises)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:">
<title>{e(report.assignment)}: what to re-teach</title><style>{STYLE}</style>
{mathjax_tags("mathjax")}</head><body>
<h1>{e(report.assignment)}: what to re-teach</h1>
<p>{len(report.totals)} graded submissions. Each exercise's pass rate is
$\\text{{pass rate}} = \\frac{{\\text{{students who passed}}}}{{\\text{{students graded}}}}$.</p>
<h2>Pass rates</h2><img src="{e(figures['pass rates'])}" alt="pass rate per exercise">
<table><tr><th>exercise</th><th>pass rate</th><th>students per score</th></tr>{rows}</table>
<h2>Scores</h2><img src="{e(figures['scores'])}" alt="distribution of the total scores">
<h2>Mistakes, most common first</h2>{sections}
</body></html>
"""


def _distribution(exercise: ExerciseSummary) -> str:
    return ", ".join(f"{points:g}/{exercise.max_points:g}: {count}" for points, count in sorted(exercise.scores.items()))


def _exercise_section(exercise: ExerciseSummary, figure: str | None) -> str:
    e = html.escape
    if not exercise.mistakes:
        return f"<h3>{e(exercise.name)}</h3><p>Every student passed.</p>"
    rows = "".join(f"<tr><td>{e(m.name)}</td><td>{m.students}</td><td><pre>{e(m.example)}</pre></td></tr>"
                   for m in exercise.mistakes)
    image = f'<img src="{e(figure)}" alt="mistakes of {e(exercise.name)}">' if figure else ""
    return (f"<h3>{e(exercise.name)}</h3>{image}<table class=\"mistakes\">"
            f"<tr><th>mistake</th><th>students</th><th>example report</th></tr>{rows}</table>")
