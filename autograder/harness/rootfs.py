"""The file system a sandboxed process sees: a new root holding only what it needs (Linux).

In a fresh mount namespace, :func:`build` makes an empty root (a small ``tmpfs``) and binds
into it, read-only and at their usual paths, only the system's directories (``/usr``,
``/etc``, the ``/lib`` and ``/bin`` links), the Python installation's directories, the
harness (``autograder/__init__.py`` and ``autograder/harness``), and a few device nodes;
``/tmp``, ``/var/tmp`` and ``/dev/shm`` are fresh size-limited ``tmpfs``. Any path to
hide that lies inside what is shown (the course's other code, the reference) is covered
by an empty read-only file system. Nothing else of the machine is there: no home
directories, no repository metadata, no course, no exchange, no ``/run``, ``/srv``,
``/var`` or ``/sys``, and no persistent directory anyone may write to.

:func:`enter` then makes that root the process's own (``pivot_root``) and detaches the old
one, so no unmount can reveal anything. Only the standard library is used.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
SYS_MOUNT_SETATTR, AT_RECURSIVE = 442, 0x8000
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}[os.uname().machine]
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
STATVFS_FLAGS = {os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
                 os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: 1024, os.ST_NODIRATIME: 2048, os.ST_RELATIME: 1 << 21}

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
GPU_DEVICES = ("/dev/nvidia*", "/dev/nvidia-caps")
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
DEVICE_LINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                "/dev/stderr": "/proc/self/fd/2"}
# Where the old and the new root sit while the new one is built.
STAGE, OLD, NEW = "/tmp", "/old", "/new"
PACKAGE = Path(__file__).resolve().parents[1]  # the autograder package
SITE_DIRECTORIES = ("site-packages", "dist-packages")

_libc = ctypes.CDLL(None, use_errno=True)


class FileSystemError(OSError):
    """A step of building the sandbox's root failed."""


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise FileSystemError(number, f"{what}: {os.strerror(number)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """``mount(2)``."""
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {target}")


@dataclass(frozen=True)
class Layout:
    """What the new root shows (read-only binds), hides (empty covers inside what is shown) and
    lets the sandboxed process write (fresh ``tmpfs``)."""

    shown: tuple[str, ...]
    hidden: tuple[str, ...] = ()
    devices: tuple[str, ...] = field(default_factory=lambda: _existing(*DEVICES, *GPU_DEVICES))

    def covering(self, hidden: list[str]) -> "Layout":
        """This layout, also hiding those of ``hidden`` that lie inside what it shows."""
        inside = [path for path in hidden if any(Path(path).is_relative_to(shown) for shown in self.shown)]
        return Layout(self.shown, self.hidden + tuple(inside), self.devices)


def _existing(*patterns: str) -> tuple[str, ...]:
    return tuple(sorted({path for pattern in patterns for path in glob.glob(pattern)}))


def python_paths() -> list[str]:
    """Where this Python finds its code (the interpreter, the standard library, the installed packages)."""
    paths = {*sys.path, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted({os.path.realpath(path) for path in paths if path and os.path.exists(path)})


def _is_checkout(root: Path) -> bool:
    """Whether the folder holding the autograder package is a source checkout (not an installation)."""
    return root.name not in SITE_DIRECTORIES


def sandbox_layout() -> Layout:
    """The root a sandboxed process gets: the system, the Python installation, the harness alone of the
    course's code. A source checkout is hidden whole (its history, solutions and reference included);
    an installed autograder package is hidden but for the harness."""
    hidden = str(PACKAGE.parent if _is_checkout(PACKAGE.parent) else PACKAGE)
    python = [path for path in python_paths() if path not in ("/", hidden)]
    harness = [str(PACKAGE / "__init__.py"), str(PACKAGE / "harness")]
    return Layout(shown=(*_existing(*SYSTEM), *python, *harness), hidden=(hidden,))


# --- building the root ----------------------------------------------------------------------------

def build(layout: Layout, scratch_bytes: int) -> None:
    """In a fresh mount namespace: build the new root at ``/new``, the old one staying at ``/old``."""
    os.umask(0o022)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    os.mkdir(STAGE + OLD)
    os.mkdir(STAGE + NEW)
    _pivot(STAGE, STAGE + OLD)
    mount("tmpfs", NEW, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    covers = [NEW]
    for path, kind in _entries(layout):
        covers += _place(path, kind, scratch_bytes)
    for path in layout.devices:
        _bind(OLD + path, NEW + path, read_only=False)
    for link, target in DEVICE_LINKS.items():
        os.symlink(target, NEW + link)
    os.mkdir(NEW + "/proc")
    for cover in reversed(covers):
        mount("none", cover, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _entries(layout: Layout) -> list[tuple[str, str | None]]:
    """Each path with what to do there, outermost first; ``None`` when nothing is needed: a path to
    show inside a shown tree, or a path to hide outside every shown tree."""
    wanted = {**{path: "hide" for path in layout.hidden}, **{path: "scratch" for path in SCRATCH},
              **{path: "show" for path in layout.shown}}
    entries: list[tuple[str, str | None]] = []
    placed: dict[str, str] = {}
    for path in sorted(wanted, key=lambda p: (len(Path(p).parts), p)):
        above = max((p for p in placed if Path(path).is_relative_to(p)), key=len, default=None)
        kind, outer = wanted[path], placed.get(above)
        placed[path] = kind
        needless = (kind == "show" and outer == "show") or (kind == "hide" and outer != "show")
        entries.append((path, None if needless else kind))
    return entries


def _place(path: str, kind: str | None, scratch_bytes: int) -> list[str]:
    """Mount one entry into the new root; the covers to make read-only once all is built."""
    target = NEW + path
    if kind == "show":
        _bind(OLD + path, target, read_only=True)
    elif kind == "scratch":
        os.makedirs(target, exist_ok=True)
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_bytes},mode=1777")
    elif kind == "hide" and os.path.isdir(target):
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755")
        return [target]
    return []


def _bind(source: str, target: str, read_only: bool) -> None:
    """Bind ``source`` (a directory, a file, a device or a symbolic link) at ``target``."""
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _read_only(target)


def _read_only(target: str) -> None:
    """Make the mount at ``target`` and every mount below it read-only, no set-user-id, no devices."""
    attributes = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    result = _libc.syscall(SYS_MOUNT_SETATTR, -100, target.encode(), AT_RECURSIVE, attributes, 32)
    if result == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        _check(result, f"mount_setattr {target}")
    for point in _mounts_under(target):  # kernels before 5.12: one remount each, keeping the locked flags
        kept = sum(flag for statvfs_flag, flag in STATVFS_FLAGS.items() if os.statvfs(point).f_flag & statvfs_flag)
        mount("none", point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | kept)


def _mounts_under(target: str) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if Path(p).is_relative_to(target)]


def _pivot(new_root: str, put_old: str) -> None:
    """``pivot_root(2)``, then move to the new root."""
    os.chdir(new_root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()), "pivot_root")
    os.chdir("/")


def enter() -> None:
    """Make the built root this mount namespace's root: ``/proc`` is mounted first (the caller being the
    first process of its own process-id namespace), then the old root is detached for good."""
    mount("proc", NEW + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("none", OLD, None, MS_REC | MS_PRIVATE)
    _check(_libc.umount2(OLD.encode(), MNT_DETACH), "umount old root")
    os.chdir(NEW)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount staging root")
    os.chdir("/")
