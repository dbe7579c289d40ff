"""Files in folders that learners fill: read and written without following anything in them.

A submission folder arrives by hand copy, tar or a learning platform's download, so a name
in it may be a symbolic link, a hard link to someone else's file, a FIFO or a device, and
the folders above it may be links too. The grader runs as the instructor, so nothing there
is followed: a folder is reached by opening each of its components from the course root
with ``O_NOFOLLOW | O_DIRECTORY`` (the ``openat`` walk), a file is opened with
``O_NOFOLLOW | O_NONBLOCK`` relative to its folder and used only when it is a regular file
with a single link and of bounded size (only the names the grader needs are looked up;
nothing else in the folder is opened), and a file is written by creating a new temporary
file (``O_EXCL``) and renaming it over the name, which replaces whatever stood there
instead of writing through it.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _NO_FOLLOW


class UntrustedFileError(OSError):
    """A path that is not a plain folder or file of bounded size; the message names it and says why,
    and never holds anything read from it."""


@dataclass
class FolderContents:
    """The regular files of a folder, read once: ``files`` by name, and ``refused`` (name -> why it
    was not read) for everything else."""

    files: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


@contextmanager
def open_folder(root: Path, parts: tuple[str, ...], create: bool = False) -> Iterator[int]:
    """A descriptor of ``root/parts...``, each part opened without following a link (and made
    when ``create``); :class:`UntrustedFileError` when one is a link or not a folder."""
    fd = os.open(root, _FOLDER_FLAGS)
    try:
        for depth, part in enumerate(parts):
            _check_name(part)
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            except OSError as error:
                path = shown("/".join(parts[:depth + 1]))
                raise UntrustedFileError(f"{path} is not a folder ({_kind(fd, part)}); nothing in it was read") \
                    from error
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_folder(root: Path, parts: tuple[str, ...], names: Iterable[str], max_file_bytes: int,
                max_total_bytes: int) -> FolderContents:
    """The files ``names`` of the folder ``root/parts...`` that are regular files, each at most
    ``max_file_bytes`` and all together at most ``max_total_bytes``; nothing else in it is looked at."""
    contents, total = FolderContents(), 0
    with open_folder(root, parts) as fd:
        for name in names:
            try:
                data = read_file(fd, name, min(max_file_bytes, max_total_bytes - total))
            except FileNotFoundError:
                continue
            except OSError as error:  # UntrustedFileError says why; another (permissions, say) gives its reason
                contents.refused[name] = _reason(name, error)
                continue
            contents.files[name] = data
            total += len(data)
    return contents


@dataclass(frozen=True)
class TreeLimits:
    """Bounds on reading a whole folder: per file, all files together, how many entries (files and
    folders), how deep; and the names (globs, as nbgrader's ``CourseDirectory.ignore``) skipped
    wherever they stand."""

    file_bytes: int
    total_bytes: int
    entries: int = 1000
    depth: int = 8
    ignore: tuple[str, ...] = (".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback")


def read_tree(root: Path, parts: tuple[str, ...], limits: TreeLimits, first: Iterable[str] = ()) -> FolderContents:
    """Every regular file under the folder ``root/parts...``, by its path relative to it (``a/b.py``),
    reached without following anything; the names ``first`` are read before the others (so the budget
    goes to them first). What is not read (a link, a FIFO, a file or folder past the limits) is in
    ``refused`` with the reason."""
    reader = _TreeReader(limits)
    with open_folder(root, parts) as fd:
        reader.read(fd, "", list(first), 0)
    return reader.contents


class _TreeReader:
    """Reads a folder's files depth first, counting what the limits allow."""

    def __init__(self, limits: TreeLimits):
        self.limits, self.contents, self.spent, self.seen = limits, FolderContents(), 0, 0

    def read(self, fd: int, prefix: str, first: list[str], depth: int) -> None:
        with os.scandir(fd) as entries:
            names = sorted(entry.name for entry in entries if not _ignored(entry.name, self.limits.ignore))
        for name in [name for name in first if name in names] + [name for name in names if name not in first]:
            try:
                self._read_entry(fd, name, prefix + name, depth, name in first)
            except OSError as error:  # UntrustedFileError says why; another (permissions, say) gives its reason
                self.contents.refused[prefix + name] = _reason(prefix + name, error)

    def _read_entry(self, fd: int, name: str, path: str, depth: int, must_be_file: bool) -> None:
        """Read the file, or the folder's files; a name of ``first`` must be a file (a folder is refused)."""
        limits = self.limits
        self.seen += 1
        if self.seen > limits.entries:
            raise UntrustedFileError(f"{shown(path)} was not read: a folder may hold {limits.entries} files and "
                                     "folders in all")
        if not must_be_file and stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            if depth + 1 >= limits.depth:
                raise UntrustedFileError(f"{shown(path)} is nested {limits.depth} folders deep; it was not read")
            with open_folder_at(fd, name, path) as child:
                self.read(child, path + "/", [], depth + 1)
            return
        data = read_file(fd, name, min(limits.file_bytes, limits.total_bytes - self.spent), path)
        self.contents.files[path] = data
        self.spent += len(data)


def _ignored(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@contextmanager
def open_folder_at(folder: int, name: str, label: str = "") -> Iterator[int]:
    """A descriptor of the folder ``name`` in ``folder``, opened without following a link (``label``:
    how messages name it)."""
    _check_name(name)
    try:
        fd = os.open(name, _FOLDER_FLAGS, dir_fd=folder)
    except OSError as error:
        raise UntrustedFileError(f"{shown(label or name)} is not a folder ({_kind(folder, name)}); nothing in it "
                                 "was read") from error
    try:
        yield fd
    finally:
        os.close(fd)


def read_path(path: Path, max_bytes: int) -> bytes:
    """The regular file at ``path`` (its folder is trusted; the file itself is not followed)."""
    fd = os.open(path.parent, _FOLDER_FLAGS & ~os.O_NOFOLLOW)
    try:
        return read_file(fd, path.name, max_bytes)
    finally:
        os.close(fd)


def read_file(folder: int, name: str, max_bytes: int, label: str = "") -> bytes:
    """The content of ``name`` in the folder ``folder`` when it is a regular file with one link and at
    most ``max_bytes``; else :class:`UntrustedFileError` saying why (``FileNotFoundError`` when absent).
    ``label`` is how messages name it (``name`` by default)."""
    _check_name(name)
    label = label or name
    before = os.stat(name, dir_fd=folder, follow_symlinks=False)  # FileNotFoundError when there is none
    _check_regular(label, before, max_bytes)
    try:  # O_NONBLOCK: a FIFO put in place after the check above does not hang the grader
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NO_FOLLOW, dir_fd=folder)
    except OSError as error:
        raise UntrustedFileError(f"{shown(label)} cannot be opened ({error.strerror})") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise UntrustedFileError(f"{shown(label)} changed while it was read")
        _check_regular(label, opened, max_bytes)
        data = b""
        while len(data) <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UntrustedFileError(f"{shown(label)} grew while it was read")
    return data


def replace_folder(root: Path, parts: tuple[str, ...], files: dict[str, bytes]) -> None:
    """Make the folder ``root/parts...`` (made as needed, no link followed) hold exactly ``files``: each is
    written to a new temporary file renamed over its name, and anything else there is removed."""
    with open_folder(root, parts, create=True) as fd:
        for name, data in files.items():
            _write_file(fd, name, data)
        with os.scandir(fd) as entries:
            stale = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries if entry.name not in files]
        for name, is_folder in stale:
            if is_folder:
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)


def _write_file(folder: int, name: str, data: bytes) -> None:
    _check_name(name)
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o644, dir_fd=folder)
    try:
        with os.fdopen(out, "wb") as file:  # not synced: the journal, synced after, finds and repairs a lost file
            file.write(data)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:  # Ctrl-C included: no half-written temporary is left behind
        os.unlink(temporary, dir_fd=folder)
        raise


def _reason(name: str, error: OSError) -> str:
    return str(error) if isinstance(error, UntrustedFileError) else f"{shown(name)} cannot be read ({error.strerror})"


def shown(name: str) -> str:
    """``name`` as it may be printed: itself when printable, else escaped."""
    return name if name.isprintable() else ascii(name)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UntrustedFileError(f"{shown(name)} is not a file name")


def _check_regular(name: str, status: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise UntrustedFileError(f"{shown(name)} is {_describe(status.st_mode)}, not a regular file; it was not read")
    if status.st_nlink != 1:
        raise UntrustedFileError(f"{shown(name)} is a hard link ({status.st_nlink} names of one file); it was not read")
    if status.st_size > max_bytes:
        raise UntrustedFileError(f"{shown(name)} is larger than {_size(max_bytes)}; it was not read")


def _kind(folder: int, name: str) -> str:
    try:
        return _describe(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return "missing"


def _describe(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISREG, "a file"))
    return next((text for test, text in kinds if test(mode)), "something else")


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"
