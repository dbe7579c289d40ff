"""``python -m tests.hub.open_namespace PATH... -- COMMAND...`` (as root): run COMMAND, still as root, in a
private mount namespace where every user can reach each PATH (see :mod:`tests.support.ordinary_user`).

The hub test starts JupyterHub this way: the notebook servers it starts for the class's users, and the
commands run as them, inherit the namespace, so they reach this Python even where it lives in a folder
only root may enter. Nothing on the machine changes."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from autograder.harness.rootfs import MS_PRIVATE, MS_REC, mount
from tests.support.ordinary_user import CLONE_NEWNS, _libc, open_the_way


def main(argv: list[str]) -> None:
    split = argv.index("--")
    paths, command = [Path(p) for p in argv[:split]], argv[split + 1:]
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    open_the_way(paths)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
