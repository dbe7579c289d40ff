"""Confining a grading process before it runs a learner's code (Linux).

What a confined process gets, in order of strength:

* always: resource limits per process (CPU time, private memory, processes, file size, open
  files, no core dumps), a fresh empty working directory, an environment holding only a few
  harmless variables, no standard input or output, every other file descriptor closed, no
  way to gain privileges (``no_new_privs``, empty capability sets);
* where Linux namespaces can be created (as root, or where unprivileged user namespaces
  are enabled): its own network namespace with no interface up (no network at all), its
  own process-id namespace (it cannot see or signal other processes, and everything it
  started dies with it), its own IPC namespace, and its own mount namespace whose root
  holds only the system's and Python's directories and the harness, read-only
  (:mod:`autograder.harness.rootfs`), then every capability dropped;
* where it can also create a user namespace of its own (nested, without privileges; Linux
  5.14 and later, which count a user's processes per user namespace): the process-count
  limit counts that submission's processes alone, and the capabilities of that namespace
  are dropped too;
* without a GPU on the machine, its address space is capped as well, so shared memory
  counts against its memory limit;
* where the grader may create cgroup v2 groups (:mod:`autograder.harness.cgroups`): its
  memory (shared memory included), processes and CPU time are counted for the whole
  submission;
* as root: it runs as the unprivileged ``nobody`` user, so files that only the instructor
  may read stay unreadable.

:func:`probe` tells which of these the machine allows, by trying them; :func:`enter` (in a
fresh child) and :func:`confine` (in the process it forks next) apply them. Only the
standard library is used: this runs in the grading zygote's children.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import re
import resource
import shutil
import signal
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from autograder.harness import rootfs

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 4, 24, 28
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 36, 38, 47, 4
CAP_SETPCAP, LINUX_CAPABILITY_VERSION_3 = 8, 0x20080522
# no root privileges by uid, no fix-ups on uid changes, no keeping or raising capabilities; each locked
SECURE_BITS = 0xEF
CAPABILITY_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
SAFE_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WORKDIR = "/tmp/submission"  # inside the sandbox's own fresh /tmp

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Memory is counted per process, on top of what the pre-loaded
    libraries already take; ``processes`` counts threads too."""

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
    """Which protections this machine allows beyond per-process resource limits (see the module docstring)."""

    namespaces: bool
    drops_to_nobody: bool
    own_user_namespace: bool = False
    address_space: bool = False
    cgroups: bool = False

    def describe(self) -> str:
        """One line for the instructor: what holds here, and what does not."""
        held = ["per-process limits (CPU time, private memory, file size, open files)", "an empty working "
                "directory", "a scrubbed environment", "no_new_privs and no capabilities"]
        missing = []
        for holds, what in self._protections():
            (held if holds else missing).append(what)
        return "sandbox: " + ", ".join(held) + (f"; NOT enforced here: {', '.join(missing)}" if missing else "")

    def _protections(self) -> list[tuple[bool, str]]:
        return [
            (self.namespaces, "no network"),
            (self.namespaces, "own process and mount namespaces (sees only the system, Python and the "
                              "harness, read-only: instructor files, the repository and shared writable "
                              "directories are absent)"),
            (self.own_user_namespace or self.cgroups, "processes counted per submission"),
            (self.cgroups, "memory (shared memory included) and CPU time counted per submission (cgroup v2)"),
            (self.address_space, "shared memory counted in the memory limit (address space capped)"),
            (self.drops_to_nobody, "runs as user nobody"),
        ]


class ConfinementError(OSError):
    """A confinement step failed."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise ConfinementError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, value: int, more: int = 0) -> None:
    _check(_libc.prctl(option, value, more, 0, 0), f"prctl({option})")


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process, which can then end them."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """This process is killed when its parent exits."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# --- the monitor: namespaces and the new root ------------------------------------------------------

def enter(isolation: Isolation, layout: rootfs.Layout, scratch_bytes: int) -> Path:
    """In a fresh child: create the namespaces (the next forked process is the first of its
    process-id namespace) and build the sandbox's root; return the working directory the next
    forked process will have (its path once that root is entered)."""
    if not isolation.namespaces:
        return Path(tempfile.mkdtemp(prefix="submission-", dir="/tmp"))
    _unshare()
    rootfs.build(layout, scratch_bytes)
    os.mkdir(rootfs.NEW + WORKDIR)
    return Path(WORKDIR)


def _unshare() -> None:
    """New mount, process-id, network and IPC namespaces; outside of root, in a new user
    namespace where this user keeps its own ids (and, until it drops them, capabilities there)."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    if os.geteuid() == 0:
        _check(_libc.unshare(flags), "unshare")
    else:
        _own_user_namespace(flags)


def _own_user_namespace(flags: int = 0) -> None:
    """Enter a new user namespace (and the namespaces of ``flags``) mapping only this process's ids."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


# --- the runner: the process that runs the learner's code ----------------------------------------

def confine(isolation: Isolation, limits: Limits, workdir: Path, processes_before: int, keep: tuple[int, ...]) -> None:
    """In the process that runs the learner's code (the first of its process-id namespace): enter
    the new root, close every file descriptor but ``keep``, set the limits, drop every privilege,
    and move into ``workdir`` with a scrubbed environment.

    ``processes_before`` is how many processes the user already runs, since the kernel's
    process limit counts them all (used only without a user namespace of its own)."""
    if isolation.namespaces:
        rootfs.enter()
    _close_files_except(keep)
    owner = pwd.getpwnam("nobody") if isolation.drops_to_nobody else None
    if owner:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    _set_limits(limits, isolation.address_space)
    if not isolation.own_user_namespace:
        _limit(resource.RLIMIT_NPROC, processes_before + limits.processes)
    _drop_bounding_set()
    if owner:
        os.setgroups([])
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)
    if isolation.own_user_namespace:
        _prctl(PR_SET_DUMPABLE, 1)  # a change of user cleared it; its /proc files must be its own to map ids
        _own_user_namespace()
        _limit(resource.RLIMIT_NPROC, limits.processes)
    _drop_capabilities()
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    die_with_parent()  # a change of user clears the setting
    _prctl(PR_SET_DUMPABLE, 0)
    _assert_unprivileged()
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(SAFE_ENVIRONMENT, HOME=str(workdir), TMPDIR=str(workdir))
    _silence_standard_streams()


def _close_files_except(keep: tuple[int, ...]) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _set_limits(limits: Limits, address_space: bool) -> None:
    _limit(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 2)
    _limit(resource.RLIMIT_DATA, _mapped("VmData") + limits.memory_bytes)
    if address_space:
        _limit(resource.RLIMIT_AS, _mapped("VmSize") + limits.memory_bytes)
    _limit(resource.RLIMIT_FSIZE, limits.file_bytes)
    _limit(resource.RLIMIT_NOFILE, limits.open_files)
    _limit(resource.RLIMIT_CORE, 0)


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(kind, (soft, soft if hard is None else hard))


def _mapped(field: str) -> int:
    """Bytes this process already maps, from ``/proc/self/status`` (``VmData``: private data; ``VmSize``: all)."""
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def _capabilities() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {name: int(re.search(rf"{name}:\s+([0-9a-f]+)", status).group(1), 16) for name in CAPABILITY_FIELDS}


def _drop_bounding_set() -> None:
    """Empty the capability bounding set, where this process may (it holds ``CAP_SETPCAP``)."""
    if not _capabilities()["CapEff"] >> CAP_SETPCAP & 1:
        return
    for capability in range(int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1):
        _prctl(PR_CAPBSET_DROP, capability)


def _drop_capabilities() -> None:
    """Empty every capability set (bounding, ambient, inheritable, permitted, effective) and lock
    the secure bits, so that no program it runs regains any."""
    _drop_bounding_set()
    if _capabilities()["CapEff"] >> CAP_SETPCAP & 1:
        _prctl(PR_SET_SECUREBITS, SECURE_BITS)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")


def _assert_unprivileged() -> None:
    held = {name: value for name, value in _capabilities().items() if value and name != "CapBnd"}
    if held:
        raise ConfinementError(f"capabilities still held: {held}")


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


# --- what this machine allows ------------------------------------------------------------------------

def probe(layout: rootfs.Layout | None = None) -> Isolation:
    """Which protections work here, found by confining throw-away child processes, the strongest
    first (in ``layout``, by default :func:`autograder.harness.rootfs.sandbox_layout`'s).
    Dropping to ``nobody`` needs root, and a Python installation that ``nobody`` can read (the
    sandbox's own root holds the installation even under a private home directory)."""
    root = os.geteuid() == 0 and _has_nobody()
    address_space = not any(glob.glob(pattern) for pattern in rootfs.GPU_DEVICES)
    layout = layout or rootfs.sandbox_layout()
    nested = ((True, True),) if _counts_processes_per_user_namespace() else ()
    for namespaces, own_user_namespace in (*nested, (True, False), (False, False)):
        nobody = root and (namespaces or not any(_blocked_ancestor(path) for path in rootfs.python_paths()))
        candidate = Isolation(namespaces, nobody, own_user_namespace, address_space)
        if _works(lambda tried=candidate: _trial(tried, layout)):
            return candidate
    return Isolation(False, False, False, False)


def _counts_processes_per_user_namespace() -> bool:
    """Whether the kernel counts a user's processes per user namespace (Linux 5.14 and later)."""
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (5, 14)


def _trial(isolation: Isolation, layout: rootfs.Layout) -> None:
    """Confine a child as a submission's runner would be; raise if any step fails."""
    workdir = enter(isolation, layout, 1 << 20)
    try:
        if not _works(lambda: confine(isolation, Limits(), workdir, 0, ())):
            raise ConfinementError(f"could not confine a process with {isolation}")
    finally:
        if not isolation.namespaces:
            shutil.rmtree(workdir, ignore_errors=True)


def _has_nobody() -> bool:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return True


def _blocked_ancestor(path: str) -> Path | None:
    """The first directory on the way to ``path`` that other users may not enter; ``None`` when the way is open."""
    for ancestor in reversed(Path(path).parents):
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor
    return None


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
