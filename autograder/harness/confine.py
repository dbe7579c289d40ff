"""Confining a grading process before it runs a learner's code (Linux).

What a confined process gets, in order of strength:

* always: resource limits (CPU time, private memory, processes, file size, open files, no
  core dumps), a fresh empty working directory, an environment holding only a few harmless
  variables, no standard input or output, no way to gain privileges (``no_new_privs``);
* where Linux namespaces can be created (as root, or where unprivileged user namespaces
  are enabled): its own network namespace with no interface up (no network at all), its
  own process-id namespace (it cannot see or signal other processes, and everything it
  started dies with it), its own IPC namespace, and its own mount namespace in which the
  instructor's paths are covered by empty read-only file systems and ``/tmp``,
  ``/var/tmp`` and ``/dev/shm`` are fresh and private;
* as root: it then drops to the unprivileged ``nobody`` user, so files that only the
  instructor may read stay unreadable and the process-count limit applies.

:func:`probe` tells which of these the machine allows; :func:`enter` (in a fresh child)
and :func:`confine` (in the process it forks next) apply them. Only the standard library
is used: this runs in the grading zygote's children.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import resource
import signal
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
# The folder holding the autograder package, which the sandboxed process runs from.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
SAFE_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Memory is private memory per process, on top of what the
    pre-loaded libraries already take; ``processes`` counts threads too."""

    cpu_seconds: int = 120
    wall_seconds: float = 180.0
    seconds_per_call: float = 30.0
    memory_bytes: int = 2 << 30
    processes: int = 32
    file_bytes: int = 16 << 20
    open_files: int = 256
    output_bytes: int = 64 << 20
    scratch_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"the sandbox limit {name} must be positive, got {value}")


@dataclass(frozen=True)
class Isolation:
    """Which protections this machine allows beyond resource limits (see the module docstring)."""

    namespaces: bool
    drops_to_nobody: bool

    def describe(self) -> str:
        """One line for the instructor: what holds, and what does not."""
        held = ["resource limits", "an empty working directory", "a scrubbed environment"]
        missing = []
        (held if self.namespaces else missing).extend(
            ["no network", "own process and mount namespaces (instructor files hidden)"])
        (held if self.drops_to_nobody else missing).append("runs as user nobody")
        return "sandbox: " + ", ".join(held) + (f"; NOT available here: {', '.join(missing)}" if missing else "")


class ConfinementError(OSError):
    """A confinement step failed."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise ConfinementError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {target}")


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process, which can then end them."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """This process is killed when its parent exits."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def enter(isolation: Isolation, hidden: list[str], scratch_bytes: int) -> Path:
    """In a fresh child: create the namespaces (the next forked process is the first of its
    process-id namespace), cover the ``hidden`` paths, make ``/tmp`` and the like private;
    return a new empty working directory."""
    if isolation.namespaces:
        _unshare()
        _mount("none", "/", None, MS_REC | MS_PRIVATE)
        if isolation.drops_to_nobody:
            expose(python_paths())
        _private_file_systems(hidden, scratch_bytes)
    return Path(tempfile.mkdtemp(prefix="submission-", dir="/tmp"))


def _unshare() -> None:
    """New mount, process-id, network and IPC namespaces; outside of root, in a new user
    namespace where this user is mapped to root."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(flags if uid == 0 else flags | CLONE_NEWUSER), "unshare")
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def python_paths() -> list[str]:
    """Where this Python finds its code: what an unprivileged grading process must be able to read."""
    paths = {*sys.path, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(path for path in paths if path and os.path.exists(path))


def _blocked_ancestor(path: str) -> tuple[Path, str] | None:
    """The first directory on the way to ``path`` that other users may not enter, and the name
    of its entry on the way; ``None`` when the way is open."""
    target = Path(path)
    for ancestor in reversed(target.parents):
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor, target.relative_to(ancestor).parts[0]
    return None


def expose(paths: list[str]) -> None:
    """In a mount namespace: open the way to ``paths`` for other users. A directory on the way
    that they may not enter (a home directory holding the Python installation, say) is covered
    by an empty file system holding only the entries on the way; the rest of it stays hidden."""
    for _ in range(max((len(Path(path).parts) for path in paths), default=0)):  # one level opens per round
        blocked: dict[Path, set[str]] = {}
        for path in paths:
            found = _blocked_ancestor(path)
            if found:
                blocked.setdefault(found[0], set()).add(found[1])
        if not blocked:
            return
        for directory, entries in blocked.items():
            _cover_except(directory, entries)
    raise ConfinementError(f"could not open the way to {paths}")


def _cover_except(directory: Path, entries: set[str]) -> None:
    handles = {name: os.open(directory / name, os.O_PATH) for name in entries}
    try:
        _mount("tmpfs", str(directory), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for name, handle in handles.items():
            target = directory / name
            if stat.S_ISDIR(os.fstat(handle).st_mode):
                target.mkdir()
            else:
                target.touch()
            _mount(f"/proc/self/fd/{handle}", str(target), None, MS_BIND | MS_REC)
    finally:
        for handle in handles.values():
            os.close(handle)


def _private_file_systems(hidden: list[str], scratch_bytes: int) -> None:
    for path in hidden:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
    for path in PRIVATE_DIRS:
        if os.path.isdir(path):
            _fresh_keeping_code(Path(path), scratch_bytes)


def _fresh_keeping_code(directory: Path, scratch_bytes: int) -> None:
    """Cover ``directory`` with a fresh, empty file system, except for the code this Python
    runs from (a virtual environment or a checkout under ``/tmp``, say), bound back in place
    with the paths hidden inside it still hidden."""
    code = [Path(path) for path in (*python_paths(), str(PACKAGE_ROOT))]
    inside = {path for path in code if path.is_relative_to(directory) and path != directory}
    outermost = [path for path in inside if not any(path.is_relative_to(other) and path != other for other in inside)]
    handles = {path: os.open(path, os.O_PATH) for path in outermost}
    try:
        _mount("tmpfs", str(directory), "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_bytes},mode=1777")
        for path, handle in handles.items():
            path.mkdir(parents=True, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", str(path), None, MS_BIND | MS_REC)
    finally:
        for handle in handles.values():
            os.close(handle)


def confine(isolation: Isolation, limits: Limits, workdir: Path, processes_before: int) -> None:
    """In the process that runs the learner's code (the first of its process-id namespace):
    set the limits, drop privileges, move into ``workdir`` with a scrubbed environment.

    ``processes_before`` is how many processes the user already runs, since the kernel's
    process limit counts them all (0 when the process becomes ``nobody``)."""
    if isolation.namespaces:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    owner = pwd.getpwnam("nobody") if isolation.drops_to_nobody else None
    if owner:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    _set_limits(limits, processes_before)
    if owner:
        os.setgroups([])
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    die_with_parent()  # a change of user clears the setting
    _prctl(PR_SET_DUMPABLE, 0)
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(SAFE_ENVIRONMENT, HOME=str(workdir), TMPDIR=str(workdir))
    _silence_standard_streams()


def _set_limits(limits: Limits, processes_before: int) -> None:
    settings = {
        resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 2),
        resource.RLIMIT_DATA: (_private_memory() + limits.memory_bytes,) * 2,
        resource.RLIMIT_NPROC: (processes_before + limits.processes,) * 2,
        resource.RLIMIT_FSIZE: (limits.file_bytes,) * 2,
        resource.RLIMIT_NOFILE: (limits.open_files,) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    for kind, (soft, hard) in settings.items():
        resource.setrlimit(kind, (soft, hard))


def _private_memory() -> int:
    """Bytes of private data this process already maps (the pre-loaded libraries' share)."""
    match = re.search(r"VmData:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def processes_of(uid: int) -> int:
    """How many processes ``uid`` runs (as this process sees them)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def _silence_standard_streams() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def probe() -> Isolation:
    """Which protections work here, found by trying them in throw-away child processes. Dropping
    to ``nobody`` needs root, and a Python installation that ``nobody`` can read (namespaces can
    open the way to one under a private home directory)."""
    namespaces = _works(_try_namespaces)
    readable = namespaces or not any(_blocked_ancestor(path) for path in python_paths())
    return Isolation(namespaces=namespaces, drops_to_nobody=os.geteuid() == 0 and _has_nobody() and readable)


def _has_nobody() -> bool:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return True


def _try_namespaces() -> None:
    _unshare()
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    if os.geteuid() == 0:
        expose(python_paths())
    _private_file_systems([], 1 << 20)
    if not _works(lambda: _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)):
        raise ConfinementError("cannot mount /proc in a new process-id namespace")


def _works(attempt: Callable[[], None]) -> bool:
    """Whether ``attempt()`` succeeds in a forked child (whose changes die with it)."""
    pid = os.fork()
    if pid == 0:
        try:
            attempt()
        except BaseException:  # any failure means "not allowed here"; the forked child must never return
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
