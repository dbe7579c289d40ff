"""The grading zygote: a process that has imported torch once and forks one child per submission.

Started by :class:`autograder.grading.sandbox.Sandbox` as ``python -P -m
autograder.harness.zygote FD MODULE...`` with a minimal environment and ``/`` as its working
directory, it imports every module of :mod:`autograder.harness` and the listed ones (never
the exercise specifications, the judge or the reference), and talks over the Unix socket
``FD``. It first says which paths the sandbox's root would show (``{"shown": [...]}``) and
is told which of them to hide (``{"hidden": [...]}``: only paths inside what is shown ever
reach it, so the course's own paths do not), learns which protections the machine allows
(:func:`autograder.harness.confine.probe`) and says so (``{"hello": isolation}``).

A request is a JSON object ``{"id", "limits"}`` with two file descriptors attached, the
job's pipe to read and the results' pipe to write. For each, the zygote forks:

* a monitor, which enters new namespaces, builds the sandbox's root and forks
* the runner: the first process of those namespaces, which confines itself, tells the
  monitor so over a pipe of their own, and runs :func:`autograder.harness.serve.serve`;
  when it ends, everything it started ends too.

Replies: ``{"id", "pid"}`` when a monitor starts; ``{"id", "failed": reason}`` when the
sandbox itself could not be set up or confined (sent by the monitor, over this socket,
which the runner does not hold); ``{"id", "status"}`` when the monitor ends, with the
runner's exit status: whatever the learner's code does, including ``os._exit(71)``, is
its own. A request ``{"kill": id}`` kills that monitor's process group (the zygote, which
reaps its children, knows the pid is still the monitor's). Orphans that escape a monitor
(only possible without namespaces) are killed at once.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import select
import shutil
import signal
import socket
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import autograder.harness
from autograder.harness import cgroups, confine, rootfs, serve

SWEEP_SECONDS = 0.1
CONFINED = b"confined"  # what the runner tells its monitor once it is confined
REASON_CHARS = 2000


@dataclass(frozen=True)
class Setting:
    """How this machine's sandboxes are made: the protections, the root's layout, the cgroups (if any)."""

    isolation: confine.Isolation
    layout: rootfs.Layout
    groups: cgroups.Cgroups | None


@dataclass(frozen=True)
class Monitor:
    """A running monitor: its request, and its submission's cgroup with the CPU time it may use."""

    request_id: int
    group: Path | None = None
    cpu_seconds: float = 0.0


def main(argv: list[str]) -> None:
    """``argv``: ``["", FD, MODULE...]``; serves until the socket closes."""
    sock = socket.socket(fileno=int(argv[1]))
    for module in pkgutil.iter_modules(autograder.harness.__path__, "autograder.harness."):
        importlib.import_module(module.name)
    for name in argv[2:]:
        try:
            importlib.import_module(name)
        except Exception:  # a module a notebook imports but this machine lacks: the learner's code reports it
            continue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the trusted side, which then stops the zygote
    confine.become_subreaper()
    confine.die_with_parent()
    layout = rootfs.sandbox_layout()
    sock.send(json.dumps({"shown": layout.shown}).encode())
    layout = layout.covering(json.loads(sock.recv(1 << 20))["hidden"])
    groups = _working_cgroups()
    isolation = replace(confine.probe(layout), cgroups=groups is not None)
    sock.send(json.dumps({"hello": asdict(isolation)}).encode())
    try:
        _serve(sock, Setting(isolation, layout, groups))
    finally:
        if groups:
            groups.close()


def _working_cgroups() -> cgroups.Cgroups | None:
    """This run's cgroups, if the machine lets it make them and set their limits."""
    groups = cgroups.Cgroups.delegated()
    if groups is None:
        return None
    try:
        cgroups.remove(groups.create("probe", 1 << 30, 8))
    except OSError:
        groups.close()
        return None
    return groups


def _serve(sock: socket.socket, setting: Setting) -> None:
    monitors: dict[int, Monitor] = {}  # by pid
    while True:
        readable, _, _ = select.select([sock], [], [], SWEEP_SECONDS)
        if readable:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
            if not message:
                break
            request = json.loads(message)
            if "kill" in request:
                _kill_monitor(request["kill"], monitors)
                continue
            pid, monitors[pid] = _spawn(request, fds, setting, sock)
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())
        _stop_overtime(monitors)
        for pid, status in _reap():
            if pid in monitors:
                ended = monitors.pop(pid)
                if ended.group:
                    cgroups.remove(ended.group)
                sock.send(json.dumps({"id": ended.request_id, "status": status}).encode())
        if not setting.isolation.namespaces:
            _kill_children(exclude=set(monitors))
    _kill_children(exclude=set())


def _stop_overtime(monitors: dict[int, Monitor]) -> None:
    """Kill every submission whose processes together used more CPU time than it may."""
    for monitor in monitors.values():
        if monitor.group and cgroups.cpu_seconds(monitor.group) > monitor.cpu_seconds:
            cgroups.kill(monitor.group)


def _kill_monitor(request_id: int, monitors: dict[int, Monitor]) -> None:
    """Kill a monitor's process group, if that monitor has not been reaped (so its pid is still its own)."""
    for pid, monitor in monitors.items():
        if monitor.request_id == request_id:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue


def _spawn(request: dict, fds: list[int], setting: Setting, sock: socket.socket) -> tuple[int, Monitor]:
    """Fork a monitor for one submission (in a cgroup of its own, where there are cgroups): its pid, and
    what the zygote keeps of it."""
    limits = confine.Limits(**request["limits"])
    group = None
    if setting.groups:
        group = setting.groups.create(f"submission-{request['id']}", limits.memory_bytes, limits.processes)
    pid = os.fork()
    if pid:
        return pid, Monitor(request["id"], group, limits.cpu_seconds)
    try:
        if group:
            cgroups.join(group)
        _monitor(request["id"], limits, fds, setting, sock)
    except BaseException as error:  # the forked monitor must never return into the zygote's loop
        _fail(sock, request["id"], f"the sandbox could not be set up: {type(error).__name__}: {error}")
    os._exit(1)


def _monitor(request_id: int, limits: confine.Limits, fds: list[int], setting: Setting, sock: socket.socket) -> None:
    """Set up the namespaces and the root, fork the runner, and end as the runner ended; never returns.
    A runner that ends before saying it is confined is the sandbox's failure, reported here."""
    os.setsid()
    confine.die_with_parent()
    isolation = setting.isolation
    job_fd, result_fd = fds
    processes_before = 0 if isolation.own_user_namespace or isolation.drops_to_nobody else \
        confine.processes_of(os.getuid())
    workdir = confine.enter(isolation, setting.layout, limits.scratch_bytes)
    ready_read, ready_write = os.pipe()
    runner = os.fork()
    if runner == 0:
        sock.close()
        os.close(ready_read)
        _run(isolation, limits, workdir, processes_before, (job_fd, result_fd, ready_write))
    for fd in (ready_write, job_fd, result_fd):
        os.close(fd)
    said = _read_all(ready_read)
    _, status = os.waitpid(runner, 0)
    shutil.rmtree(workdir, ignore_errors=True)
    if said != CONFINED:
        _fail(sock, request_id, "the sandbox could not confine the grading process: "
                                f"{said.decode(errors='replace') or 'it ended before saying why'}")
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _fail(sock: socket.socket, request_id: int, reason: str) -> None:
    """Report the sandbox's own failure to the trusted side, then end; never returns."""
    try:
        sock.send(json.dumps({"id": request_id, "failed": reason[:REASON_CHARS]}).encode())
    finally:
        os._exit(1)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _run(isolation: confine.Isolation, limits: confine.Limits, workdir: Path, processes_before: int,
         fds: tuple[int, int, int]) -> None:
    """The runner: confine, say so to the monitor, then run the job; never returns."""
    job_fd, result_fd, ready = fds
    try:
        confine.confine(isolation, limits, workdir, processes_before, keep=fds)
    except BaseException as error:  # never run a learner's code unconfined; the monitor reports why
        os.write(ready, f"{type(error).__name__}: {error}".encode()[:REASON_CHARS])
        os._exit(1)
    os.write(ready, CONFINED)
    os.close(ready)
    try:
        serve.serve(job_fd, result_fd)
    except BaseException:  # the learner's code broke the harness itself; the trusted side reports what is missing
        os._exit(1)
    os._exit(0)


def _reap() -> list[tuple[int, int]]:
    """``(pid, exit code)`` of children that ended; a negative code is the signal that killed one."""
    ended = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def _kill_children(exclude: set[int]) -> None:
    """SIGKILL every child but ``exclude``: orphans re-parented here by the subreaper setting."""
    for pid in _children():
        if pid not in exclude:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue


def _children() -> list[int]:
    try:
        return [int(pid) for pid in Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()]
    except OSError:
        return []


if __name__ == "__main__":
    main(sys.argv)
