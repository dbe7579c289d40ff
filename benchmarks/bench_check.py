"""How long checking one exercise takes, per exercise of lessons 02 and 03 (CPU and CUDA if present).

Run: ``python -m benchmarks.bench_check``. The figure learners feel is the median time of
``check()`` on a correct solution, once torch is imported; a wrong solution is also timed,
since diagnosing it evaluates the known mistakes as well.
"""

from __future__ import annotations

import statistics

import torch

from autograder.checker import run_check
from autograder.registry import lesson_exercises
from benchmarks.timing import median_seconds
from tests.support.notebooks import GRADED_LESSONS, solution_of


def main() -> None:
    exercises = [ex for lesson in GRADED_LESSONS for ex in lesson_exercises(lesson)]
    cpu = torch.device("cpu")
    timings = {}
    for exercise in exercises:
        solution = solution_of(exercise)
        timings[exercise.name] = median_seconds(lambda: run_check(solution, exercise.name), cpu, repeats=7)
        print(f"  {exercise.name:<30} {timings[exercise.name] * 1000:7.1f} ms")
    print(f"median per-exercise check time: {statistics.median(timings.values()) * 1000:.1f} ms "
          f"(max {max(timings.values()) * 1000:.1f} ms) on {', '.join(sorted({'cpu', *(['cuda'] if torch.cuda.is_available() else [])}))}")

    def wrong_scores(q, k):
        return q @ k.transpose(-2, -1)

    wrong = median_seconds(lambda: run_check(wrong_scores, "attention_scores"), cpu, repeats=7)
    print(f"a wrong attention_scores, diagnosed: {wrong * 1000:.1f} ms")


if __name__ == "__main__":
    main()
