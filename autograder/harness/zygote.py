"""The grading zygote: a process that has imported torch once and forks one child per submission.

Started by :class:`autograder.grading.sandbox.Sandbox` as ``python -m
autograder.harness.zygote FD MODULE...``, it imports every module of
:mod:`autograder.harness` and the listed ones (never the exercise specifications, the
judge or the reference), learns which protections the machine allows
(:func:`autograder.harness.confine.probe`), and serves requests on the Unix socket ``FD``. A request is a JSON object
``{"id", "limits", "hidden"}`` with two file descriptors attached, the job's pipe to read
and the results' pipe to write. For each, the zygote forks:

* a monitor, which enters new namespaces, makes the working directory and forks
* the runner: the first process of those namespaces, which confines itself and runs
  :func:`autograder.harness.serve.serve`; when it ends, everything it started ends too.

Replies: ``{"hello": isolation}`` once, then ``{"id", "pid"}`` when a monitor starts and
``{"id", "status"}`` when it ends. A request ``{"kill": id}`` kills that monitor's process
group (the zygote, which reaps its children, knows the pid is still the monitor's).
Orphans that escape a monitor (only possible without namespaces) are killed at once.
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
from dataclasses import asdict
from pathlib import Path

import autograder.harness
from autograder.harness import confine, serve

EXIT_SETUP_FAILED = 71  # the monitor could not create the namespaces or the working directory
EXIT_CONFINE_FAILED = 72  # the runner could not confine itself
EXIT_MESSAGES = {EXIT_SETUP_FAILED: "the sandbox could not create its namespaces or working directory",
                 EXIT_CONFINE_FAILED: "the sandbox could not confine the grading process"}
SWEEP_SECONDS = 0.1


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
    isolation = confine.probe()
    sock.send(json.dumps({"hello": asdict(isolation)}).encode())
    _serve(sock, isolation)


def _serve(sock: socket.socket, isolation: confine.Isolation) -> None:
    monitors: dict[int, int] = {}  # monitor pid -> request id
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
            pid = _spawn(request, fds, isolation, sock)
            for fd in fds:
                os.close(fd)
            monitors[pid] = request["id"]
            sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())
        for pid, status in _reap():
            if pid in monitors:
                sock.send(json.dumps({"id": monitors.pop(pid), "status": status}).encode())
        if not isolation.namespaces:
            _kill_children(exclude=set(monitors))
    _kill_children(exclude=set())


def _kill_monitor(request_id: int, monitors: dict[int, int]) -> None:
    """Kill a monitor's process group, if that monitor has not been reaped (so its pid is still its own)."""
    for pid, owner in monitors.items():
        if owner == request_id:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue


def _spawn(request: dict, fds: list[int], isolation: confine.Isolation, sock: socket.socket) -> int:
    """Fork a monitor for one submission; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        sock.close()
        os.setsid()
        confine.die_with_parent()
        job_fd, result_fd = fds
        limits = confine.Limits(**request["limits"])
        processes_before = 0 if isolation.drops_to_nobody else confine.processes_of(os.getuid())
        workdir = confine.enter(isolation, request["hidden"], limits.scratch_bytes)
    except BaseException:  # the forked monitor must never return into the zygote's loop; the status says why
        os._exit(EXIT_SETUP_FAILED)
    runner = os.fork()
    if runner == 0:
        _run(isolation, limits, workdir, processes_before, job_fd, result_fd)
    os.close(job_fd)
    os.close(result_fd)
    _, status = os.waitpid(runner, 0)
    shutil.rmtree(workdir, ignore_errors=True)
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _run(isolation: confine.Isolation, limits: confine.Limits, workdir: Path, processes_before: int,
         job_fd: int, result_fd: int) -> None:
    """The runner: confine, then run the job; never returns."""
    try:
        confine.confine(isolation, limits, workdir, processes_before)
    except BaseException:  # never run a learner's code unconfined; the status says why
        os._exit(EXIT_CONFINE_FAILED)
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
