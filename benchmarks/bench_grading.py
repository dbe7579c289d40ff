"""Grading a class: ``tfcourse grade`` against ``nbgrader autograde`` on the same 100 submissions.

Run: ``python -m benchmarks.bench_grading [--submissions 100] [--workers N] [--nbgrader-subset K]``.
It builds a course holding lesson 02 with a mix of right, wrong and partly solved submissions,
copies it, grades one copy with each command (each timed from start to exit, start-up included,
in the same run), and prints both times, the speed-up, and whether the two gradebooks agree
student by student. ``nbgrader autograde`` starts a kernel per notebook (seconds each), so with
``--nbgrader-subset K`` it grades a copy holding only the first K submissions (the same mix), and
its time for all of them is estimated as its start-up (timed on a copy with no submission) plus
its measured time per submission after start-up; the scores are compared on those K.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.grading_course import (
    LESSON,
    build_course,
    gradebook_scores,
    released,
    solution_ids,
    solved,
    submit,
)

# Wrong answers: known mistakes of lesson 02, each in an otherwise solved notebook.
MISTAKES = {
    "attention_scores": "def attention_scores(q, k):\n    return q @ k.transpose(-2, -1)",
    "softmax": "def softmax(x, dim=-1, temperature=1.0):\n    e = torch.exp(x / temperature)\n"
               "    return e / e.sum(dim=dim, keepdim=True)",
    "attention_entropy": "def attention_entropy(weights):\n    return -(weights * torch.log2(weights.clamp_min(1e-30)))"
                         ".sum(-1)",
}


def make_submissions(course: Path, count: int) -> None:
    """Right, wrong, partly solved and untouched notebooks, in turn."""
    everything = solution_ids(course)
    for number in range(count):
        kind = number % 4
        if kind == 0:
            notebook = solved(course, everything)
        elif kind == 1:
            notebook = solved(course, {"softmax", "attention_scores"} if number % 8 == 1 else {"attention_entropy"})
        elif kind == 2:
            cell_id, source = list(MISTAKES.items())[number // 4 % len(MISTAKES)]
            notebook = solved(course, everything)
            next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id).source = source
        else:
            notebook = released(course)
        submit(course, f"student-{number:03d}", notebook)


def drop_submissions(course: Path, keep: int) -> None:
    """Keep only the first ``keep`` students' submissions (in name order) in ``course``."""
    for folder in sorted((course / "submitted").iterdir())[keep:]:
        shutil.rmtree(folder)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, must_succeed: bool = True) -> tuple[float, float]:
    """Wall seconds and CPU seconds (of the command and every process it waited for) of ``command``.

    The CPU time depends less on what else the machine runs than the wall time does."""
    environment = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    start, cpu = time.perf_counter(), _children_cpu_seconds()
    result = subprocess.run(command, check=False, cwd=cwd, env=environment, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, _children_cpu_seconds() - cpu
    if must_succeed and result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{result.stderr[-3000:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--nbgrader-subset", type=int, default=None,
                        help="time nbgrader on the first K submissions only and estimate the rest at its rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        course = build_course(Path(scratch) / "ours")
        make_submissions(course, args.submissions)
        subset = min(args.nbgrader_subset or args.submissions, args.submissions)
        twin = Path(scratch) / "nbgrader" / "course"
        shutil.copytree(course, twin)
        drop_submissions(twin, keep=subset)
        ours, our_cpu = timed([sys.executable, "-m", "tfcourse.cli", "grade", LESSON, "--course", str(course),
                               "--workers", str(args.workers)], course)
        autograde = [sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force"]
        measured, their_cpu = timed(autograde, twin)
        start_up = (0.0, 0.0)
        if subset < args.submissions:
            empty = Path(scratch) / "empty" / "course"
            shutil.copytree(course, empty)
            drop_submissions(empty, keep=0)
            start_up = timed(autograde, empty, must_succeed=False)  # it ends "no submissions" after starting
        theirs = start_up[0] + (measured - start_up[0]) * args.submissions / subset
        their_cpu = start_up[1] + (their_cpu - start_up[1]) * args.submissions / subset
        our_scores, their_scores = gradebook_scores(course), gradebook_scores(twin)
    agree = sum(our_scores.get(s) == their_scores.get(s) for s in their_scores)
    print(f"{args.submissions} submissions of {LESSON}, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"  tfcourse grade      {ours:8.1f} s   {our_cpu:8.1f} CPU s")
    if subset < args.submissions:
        print(f"  nbgrader autograde: estimated as its start-up ({start_up[0]:.1f} s, with no submission) plus its "
              f"rate on the first {subset} submissions ({(measured - start_up[0]) / subset:.2f} s each)")
    print(f"  nbgrader autograde  {theirs:8.1f} s   {their_cpu:8.1f} CPU s")
    print(f"  speed-up            {theirs / ours:8.1f}x  {their_cpu / our_cpu:8.1f}x in CPU time")
    print(f"  scores agree        {agree} of {len(their_scores)} students"
          + ("" if agree == len(their_scores) == subset else "  <-- DISAGREEMENT"))
    for student in sorted(s for s in their_scores if our_scores.get(s) != their_scores[s]):
        print(f"    {student}: tfcourse {our_scores.get(student)}, nbgrader {their_scores[student]}")


if __name__ == "__main__":
    main()
