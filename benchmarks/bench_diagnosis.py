"""How well and how fast the checks diagnose natural wrong answers (the corpus in tests/support/wrong_answers).

Run: ``python -m benchmarks.bench_diagnosis [--ref GITREF] [--lessons 01 02 ...]``. Each wrong
answer is checked on the visible cases on the CPU (twice: the first check of an answer, then a second one).
It prints per lesson: the entries, the share named (the report contains all of the answer's
words), the entries that wrongly pass, and the median time of a full report for function and
for module exercises (targets: 90% named on every lesson, none passing, under 0.3 s per
function and 2 s per module); then the answers not named, with their reports' first lines.
With ``--ref``, the same corpus is also judged by another commit's ``autograder`` (checked out
in a temporary ``git worktree``, run in a subprocess) and both shares are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from tests.support.notebooks import ROOT
from tests.support.wrong_corpus import answer_ids, corpus, diagnose

TARGET_SHARE = 0.9
TARGET_SECONDS = {"function": 0.3, "module": 2.0}


def judge(lessons: list[str] | None) -> list[dict]:
    """One record per answer: id, lesson, kind, named, passed, the seconds of its first and of a second check,
    the story and the report's first line."""
    records = []
    for lesson, answers in corpus().items():
        if lessons and lesson[:2] not in lessons:
            continue
        for answer, answer_id in zip(answers, answer_ids(lesson, answers)):
            first = diagnose(answer)
            again = diagnose(answer)
            records.append({"id": answer_id, "lesson": lesson, "kind": answer.kind, "named": again.named,
                            "passed": again.result.passed, "first": first.seconds, "again": again.seconds,
                            "story": answer.story, "missing": again.missing, "first_line": again.first_line})
    return records


def judge_at(ref: str, lessons: list[str] | None) -> list[dict]:
    """:func:`judge` with the ``autograder`` and ``tfcourse`` packages of commit ``ref``."""
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            # A folder whose packages are the ref's engine and this tree's corpus and benchmarks.
            mixed = Path(scratch) / "mixed"
            mixed.mkdir()
            for package, source in [("autograder", tree), ("tfcourse", tree), ("tests", ROOT), ("benchmarks", ROOT)]:
                (mixed / package).symlink_to(source / package)
            command = [sys.executable, "-m", "benchmarks.bench_diagnosis", "--json", *(["--lessons", *lessons]
                                                                                       if lessons else [])]
            result = subprocess.run(command, cwd=mixed, capture_output=True, text=True, check=False,
                                    env=dict(os.environ, PYTHONPATH=str(mixed)))
            if result.returncode != 0:
                raise SystemExit(f"judging at {ref} failed:\n{result.stderr[-3000:]}")
            return json.loads(result.stdout)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True,
                           capture_output=True)


def median_ms(records: list[dict], kind: str) -> str:
    """The median times of the first and of a second check of ``kind``'s answers, in ms: "first / again"."""
    rows = [r for r in records if r["kind"] == kind]
    if not rows:
        return "-"
    return " / ".join(f"{statistics.median(r[key] for r in rows) * 1000:.0f}" for key in ("first", "again"))


def print_table(records: list[dict], before: list[dict] | None, ref: str | None) -> None:
    named_before = {r["id"]: r["named"] for r in before or []}
    header = f"{'lesson':<20}{'entries':>8}{'named':>9}" + (f"{'at ' + ref[:10]:>15}" if before else "")
    print(header + f"{'passing':>9}{'function ms':>14}{'module ms':>14}")
    for lesson in dict.fromkeys(r["lesson"] for r in records):
        rows = [r for r in records if r["lesson"] == lesson]
        share = sum(r["named"] for r in rows) / len(rows)
        line = f"{lesson:<20}{len(rows):>8}{share:>8.0%} "
        if before:
            line += f"{sum(named_before.get(r['id'], False) for r in rows) / len(rows):>14.0%}"
        line += f"{sum(r['passed'] for r in rows):>9}{median_ms(rows, 'function'):>14}{median_ms(rows, 'module'):>14}"
        print(line)
    share = sum(r["named"] for r in records) / len(records)
    print(f"{'all':<20}{len(records):>8}{share:>8.0%} " + (
        f"{sum(named_before.get(r['id'], False) for r in records) / len(records):>14.0%}" if before else "")
          + f"{sum(r['passed'] for r in records):>9}{median_ms(records, 'function'):>14}"
            f"{median_ms(records, 'module'):>14}")
    print(f"times: median ms of an answer's first check / of a second one, on {torch.get_num_threads()} thread(s)")
    print(f"targets: {TARGET_SHARE:.0%} named on every lesson, none passing, median under "
          f"{TARGET_SECONDS['function'] * 1000:.0f} ms (function) and {TARGET_SECONDS['module'] * 1000:.0f} ms (module)")


def print_unnamed(records: list[dict]) -> None:
    unnamed = [r for r in records if not r["named"]]
    if unnamed:
        print(f"\nnot named ({len(unnamed)}):")
    for r in unnamed:
        verdict = "PASSES" if r["passed"] else f"lacks {r['missing']}"
        print(f"  {r['id']}: {r['story']} -- {verdict}\n      {r['first_line'][:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also judge the corpus with this commit's autograder")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers to judge, such as 01 02 (default: all)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON (used by --ref)")
    args = parser.parse_args()
    if args.json:  # what the learners' code prints must not mix with the records
        with contextlib.redirect_stdout(io.StringIO()):
            records = judge(args.lessons)
        print(json.dumps(records))
        return
    records = judge(args.lessons)
    before = judge_at(args.ref, args.lessons) if args.ref else None
    print_table(records, before, args.ref)
    print_unnamed(records)


if __name__ == "__main__":
    main()
