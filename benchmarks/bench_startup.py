"""How long each ``tfcourse`` command takes to start: its ``--help``, and a few cheap real invocations.

Run: ``python -m benchmarks.bench_startup [--repeats 5]``. Each line is the median wall time of
a fresh ``python -m tfcourse.cli ...`` process from start to exit, so it includes the
interpreter's start and every import the command makes before its own work begins. A command
imports torch, matplotlib or nbgrader only when it needs them (:mod:`tfcourse.cli.lazy`), so
``--help`` and the commands of a course's bookkeeping start without them; ``train``,
``generate`` and ``experiment`` make their options from the reference's settings, which need
torch.
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


def median_start(arguments: list[str], repeats: int) -> float:
    """Median seconds of ``tfcourse ARGUMENTS`` in a fresh interpreter (its exit status is not judged)."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tfcourse.cli", *arguments], check=False, capture_output=True,
                       env=environment)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        timings = {label: median_start(arguments, args.repeats) for label, arguments in invocations(Path(scratch)).items()}
    for label, seconds in timings.items():
        print(f"  tfcourse {label:<28} {seconds:6.2f} s{'' if seconds < TARGET_SECONDS else '  (over 2 s)'}")
    print(f"median of {args.repeats} fresh processes each, {os.cpu_count()} CPUs; "
          f"{sum(s < TARGET_SECONDS for s in timings.values())} of {len(timings)} start in under {TARGET_SECONDS:g} s")


if __name__ == "__main__":
    main()
