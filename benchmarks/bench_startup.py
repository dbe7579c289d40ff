"""How long each ``tfcourse`` command takes to start: its ``--help``, and a few cheap real invocations.

Run: ``python -m benchmarks.bench_startup [--repeats 5]``. Each line gives two median wall times
of a fresh ``python -m tfcourse.cli ...`` process: until its first output (the start-up: the
interpreter's start and every import the command makes before it can say anything) and until it
exits. A command imports torch, matplotlib or nbgrader only when its own work needs them, and
the options of ``train``, ``generate`` and ``experiment`` come from settings modules that import
no torch, so every ``--help`` and the course's bookkeeping start without them. ``doctor`` prints
the installation at once; its device rows follow after importing torch, which is its work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tfcourse.cli import build_parser

TARGET_SECONDS = 2.0


def command_names() -> list[str]:
    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return list(commands.choices)


def invocations(scratch: Path) -> dict[str, list[str]]:
    """``--help`` of the program and of every command, then real commands that do little work."""
    runs = {"--help": ["--help"]}
    runs.update({f"{name} --help": [name, "--help"] for name in command_names()})
    runs["doctor"] = ["doctor"]
    runs["check (no such notebook)"] = ["check", str(scratch / "missing.ipynb")]
    runs["grade (no course)"] = ["grade", "02-attention", "--course", str(scratch)]
    return runs


def timed_run(arguments: list[str]) -> tuple[float, float]:
    """Seconds until ``tfcourse ARGUMENTS`` first writes (stdout or stderr) and until it exits."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tfcourse.cli", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=environment)
    process.stdout.read(1)
    first_output = time.perf_counter() - start
    process.stdout.read()
    process.wait()
    return first_output, time.perf_counter() - start


def median_times(arguments: list[str], repeats: int) -> tuple[float, float]:
    """Median seconds to first output and to exit over ``repeats`` fresh processes (exit status not judged)."""
    runs = [timed_run(arguments) for _ in range(repeats)]
    return statistics.median(run[0] for run in runs), statistics.median(run[1] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        timings = {label: median_times(arguments, args.repeats) for label, arguments in invocations(Path(scratch)).items()}
    print(f"  {'command':<37} {'start-up':>8} {'exit':>8}")
    for label, (first_output, exit_) in timings.items():
        over = "" if first_output < TARGET_SECONDS else "  (starts in over 2 s)"
        print(f"  tfcourse {label:<28} {first_output:6.2f} s {exit_:6.2f} s{over}")
    started = sum(first_output < TARGET_SECONDS for first_output, _ in timings.values())
    print(f"median of {args.repeats} fresh processes each, {os.cpu_count()} CPUs; "
          f"{started} of {len(timings)} start in under {TARGET_SECONDS:g} s")


if __name__ == "__main__":
    main()
