"""Limits counted per submission rather than per process: cgroup v2, where the grader may create cgroups.

A cgroup counts everything its processes use together: memory (shared memory and ``tmpfs``
included), processes and threads, CPU time. :meth:`Cgroups.delegated` looks, from this
process's own cgroup upwards, for a cgroup v2 directory that already hands the ``memory``,
``pids`` and ``cpu`` controllers to its children and that this process may write (any such
cgroup as root; a delegated subtree, such as systemd's ``user@UID.service``, as an ordinary
user), and creates the grading run's own cgroup there. Each submission then gets a cgroup
below it, which its monitor joins before it forks anything. Where none is found (cgroup v1,
or a tree this process may not write), the per-process resource limits of
:mod:`autograder.harness.confine` are all there is. Only the standard library is used.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_MICROSECONDS = 100_000
REMOVE_SECONDS = 2.0


@dataclass(frozen=True)
class Cgroups:
    """The grading run's own cgroup, under which each submission gets one."""

    root: Path

    @classmethod
    def delegated(cls) -> "Cgroups | None":
        """This run's cgroup, created where a writable cgroup v2 tree hands out the controllers; ``None``
        when there is no such tree."""
        parent = _writable_parent()
        if parent is None:
            return None
        try:
            own = parent / f"tfcourse-grade-{os.getpid()}"
            own.mkdir()
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in CONTROLLERS))
        except OSError:
            return None
        return cls(own)

    def create(self, name: str, memory_bytes: int, processes: int) -> Path:
        """A submission's cgroup: at most ``memory_bytes`` of memory (no swap), ``processes`` processes
        and threads, and one CPU's worth of time."""
        group = self.root / name
        group.mkdir()
        (group / "memory.max").write_text(str(memory_bytes))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(processes))
        (group / "cpu.max").write_text(f"{CPU_PERIOD_MICROSECONDS} {CPU_PERIOD_MICROSECONDS}")
        return group

    def close(self) -> None:
        """Remove this run's cgroup (its submissions' cgroups are removed first)."""
        for group in self.root.iterdir():
            if group.is_dir():
                remove(group)
        try:
            self.root.rmdir()
        except OSError:
            pass


def join(group: Path) -> None:
    """Move this process (and so whatever it forks next) into ``group``."""
    (group / "cgroup.procs").write_text("0")


def cpu_seconds(group: Path) -> float:
    """CPU time used by every process that ran in ``group``."""
    for line in (group / "cpu.stat").read_text().splitlines():
        name, value = line.split()
        if name == "usage_usec":
            return int(value) / 1e6
    return 0.0


def kill(group: Path) -> None:
    """SIGKILL every process in ``group``."""
    if (group / "cgroup.kill").exists():
        (group / "cgroup.kill").write_text("1")
        return
    for pid in (group / "cgroup.procs").read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue


def remove(group: Path) -> None:
    """Kill what is left in ``group`` and remove it."""
    deadline = time.monotonic() + REMOVE_SECONDS
    while True:
        try:
            kill(group)
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _writable_parent() -> Path | None:
    """The nearest cgroup v2 directory, from this process's own upwards, whose children get the
    controllers and which this process may write."""
    mount, own = _cgroup2_mount(), _own_cgroup()
    if mount is None or own is None:
        return None
    here = mount / own.lstrip("/")
    for candidate in (here, *here.parents):
        if not candidate.is_relative_to(mount):
            return None
        try:
            enabled = (candidate / "cgroup.subtree_control").read_text().split()
        except OSError:
            continue
        if set(CONTROLLERS) <= set(enabled) and os.access(candidate, os.W_OK):
            return candidate
    return None


def _cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, filesystem = line.partition(" - ")
        if filesystem.split()[0] == "cgroup2":
            return Path(fields.split()[4])
    return None


def _own_cgroup() -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None
