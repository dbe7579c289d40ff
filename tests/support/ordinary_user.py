"""Running a command as an ordinary user, from a test running as root.

``python -m tests.support.ordinary_user USER PATH... -- COMMAND...`` (as root) creates the
user if it does not exist, opens the way to each ``PATH`` for it and runs ``COMMAND`` as that
user, without capabilities. The way is opened in a private mount namespace that only this
command and its children see: a directory on the way that other users may not enter (a
root-only home holding the Python installation, say, or pytest's private temporary folder) is
covered there by an empty file system holding only the entries on the way, bound back in
place. Nothing on the machine changes: no permission is granted outside that namespace.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

from autograder.harness.rootfs import MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_REC, mount

CLONE_NEWNS = 0x00020000
USER = "tfgrader"

_libc = ctypes.CDLL(None, use_errno=True)


def ensure_user(name: str = USER) -> pwd.struct_passwd:
    """The user ``name``, created (a system user without a home directory) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


def _blocked(path: Path) -> tuple[Path, str] | None:
    """The first directory on the way to ``path`` that others may not enter, and the entry on the way."""
    for ancestor in reversed(path.parents):
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor, path.relative_to(ancestor).parts[0]
    return None


def open_the_way(paths: list[Path]) -> None:
    """In a private mount namespace: let other users reach ``paths`` (one closed level per round)."""
    for _ in range(max(len(path.parts) for path in paths)):
        closed: dict[Path, set[str]] = {}
        for path in paths:
            found = _blocked(path)
            if found:
                closed.setdefault(found[0], set()).add(found[1])
        if not closed:
            return
        for directory, entries in closed.items():
            _cover_keeping(directory, entries)
    raise RuntimeError(f"could not open the way to {paths}")


def _cover_keeping(directory: Path, entries: set[str]) -> None:
    handles = {name: os.open(directory / name, os.O_PATH) for name in entries}
    try:
        mount("tmpfs", str(directory), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for name, handle in handles.items():
            target = directory / name
            target.mkdir() if stat.S_ISDIR(os.fstat(handle).st_mode) else target.touch()
            mount(f"/proc/self/fd/{handle}", str(target), None, MS_BIND | MS_REC)
    finally:
        for handle in handles.values():
            os.close(handle)


def main(argv: list[str]) -> None:
    """``USER PATH... -- COMMAND...``: run COMMAND as USER with the way to every PATH open."""
    split = argv.index("--")
    user, paths, command = ensure_user(argv[0]), [Path(p) for p in argv[1:split]], argv[split + 1:]
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    open_the_way(paths)
    os.initgroups(user.pw_name, user.pw_gid)
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)  # from root to another user: every capability is gone
    os.execvpe(command[0], command, dict(os.environ, USER=user.pw_name, LOGNAME=user.pw_name))


if __name__ == "__main__":
    main(sys.argv[1:])
