"""Running untrusted jobs: the trusted side's handle on the grading zygote.

:class:`Sandbox` starts :mod:`autograder.harness.zygote` once, then :meth:`Sandbox.run` sends it
a :class:`~autograder.harness.serve.Job` per submission and collects the child's events, enforcing
the wall-clock limit (the child's whole process tree is killed) and a cap on the bytes it
may send back. Jobs are pickled here, on the trusted side, and unpickled by the child; a
job that would make the child import anything of the course's outside :mod:`autograder.harness`
is refused before it leaves. Events come back as :mod:`autograder.harness.wire` messages and
are decoded without running code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import queue
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from autograder.harness import wire
from autograder.harness.confine import SAFE_ENVIRONMENT, Isolation, Limits
from autograder.harness.forbidden import COURSE_PACKAGES, HARNESS, in_harness
from autograder.harness.serve import Job, on_device

START_SECONDS = 300.0
EXIT_GRACE_SECONDS = 5.0
PASSED_THROUGH = ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")  # what the zygote inherits of the environment
# No working directory on the zygote's sys.path (Python 3.11+ has -P; on 3.10 the zygote's cwd "/" holds no code).
SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the learner's code): the submission is not graded."""


@dataclass
class SandboxRun:
    """What came back from one job: decoded events, and how the child ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    timed_out: bool = False
    overflowed: bool = False
    malformed: str | None = None
    seconds: float = 0.0

    def ending(self, limits: Limits) -> str | None:
        """Why the child stopped before finishing, in words; ``None`` when it finished."""
        if self.timed_out:
            return f"the notebook ran longer than {limits.wall_seconds:g} s and was stopped"
        if self.overflowed:
            return f"the notebook sent more than {limits.output_bytes >> 20} MiB of results and was stopped"
        if self.malformed:
            return f"the grading channel carried malformed data ({self.malformed})"
        if any(event.get("event") == "done" for event in self.events):
            return None
        if self.exit_code is not None and self.exit_code > 128:
            name = signal.Signals(self.exit_code - 128).name if self.exit_code - 128 in signal.valid_signals() else ""
            return (f"the notebook's process was killed ({name or self.exit_code}): a crash, "
                    "or a CPU-time or memory limit")
        return f"the notebook's process ended early (exit status {self.exit_code}, as after os._exit)"


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to the pipe ``fd`` and close it; stops early if the reader is gone."""
    try:
        wire.write_all(fd, data)
    except OSError:  # the child ended before reading its job; its verdict says why
        pass
    finally:
        os.close(fd)


class _JobPickler(pickle.Pickler):
    """Pickles jobs: CUDA tensors travel through the CPU; nothing from the course's modules may travel."""

    def reducer_override(self, obj: Any) -> Any:
        module = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) else None
        module = module or type(obj).__module__
        if module.split(".")[0] in COURSE_PACKAGES and not in_harness(module):
            raise pickle.PicklingError(
                f"a case input refers to {module}.{getattr(obj, '__qualname__', type(obj).__qualname__)}, which "
                "the grading sandbox may not load. Case inputs must be data: tensors, arrays, numbers, torch.nn "
                "modules, or classes from autograder.harness.casedata.")
        if isinstance(obj, torch.Tensor) and obj.device.type == "cuda" and type(obj) is torch.Tensor:
            return on_device, (obj.detach().cpu(), str(obj.device))
        return NotImplemented


def pickle_job(job: Job) -> bytes:
    """The job as bytes for the sandbox; ``pickle.PicklingError`` names what cannot be sent."""
    buffer = io.BytesIO()
    _JobPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(job)
    return buffer.getvalue()


class Sandbox:
    """A started zygote; :meth:`run` may be called from several threads at once.

    ``hidden`` are paths the submissions must not see (the course directory, the reference);
    ``preload`` modules are imported once by the zygote so that children start warm. The zygote
    starts from a minimal environment (no instructor's variables, no ``TFCOURSE_HIDDEN_SEED``)
    in ``/``, and learns of ``hidden`` only the paths that lie inside what its sandboxes show.
    """

    def __init__(self, limits: Limits, hidden: list[str], preload: tuple[str, ...] = ("numpy", "torch")):
        self.limits, self.hidden, self.preload = limits, hidden, preload
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._next_id = 0
        self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = tempfile.TemporaryFile()
        environment = {**SAFE_ENVIRONMENT, **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}}
        self._process = subprocess.Popen(
            [sys.executable, *SAFE_PATH, "-m", f"{HARNESS}.zygote", str(theirs.fileno()), *self.preload],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=environment, cwd="/")
        theirs.close()
        self._socket = ours
        shown = self._receive("shown")
        if shown is not None:
            inside = [path for path in self.hidden if any(Path(path).is_relative_to(s) for s in shown)]
            ours.send(json.dumps({"hidden": inside}).encode())
        hello = self._receive("hello")
        if hello is None:
            self.close()
            raise SandboxError(f"the grading sandbox did not start: {self._log_tail()}")
        self.isolation = Isolation(**hello)
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    def _receive(self, key: str) -> Any:
        """The zygote's next start-up message, ``{key: value}``: its value, or ``None`` if none came."""
        ready, _, _ = select.select([self._socket], [], [], START_SECONDS)
        message = json.loads(self._socket.recv(1 << 20) or b"{}") if ready else {}
        return message.get(key)

    def _log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace") or "no output"

    def _read_replies(self) -> None:
        while True:
            try:
                message = self._socket.recv(1 << 16)
            except OSError:
                message = b""
            if not message:
                for replies in list(self._replies.values()):
                    replies.put({"status": None})
                return
            reply = json.loads(message)
            replies = self._replies.get(reply["id"])
            if replies is not None:  # else the job was given up on already
                replies.put(reply)

    def run(self, job: Job | bytes) -> SandboxRun:
        """Run one job (or its pickled bytes) in a fresh confined child; never raises for what the
        learner's code does, only :class:`SandboxError` when the sandbox itself fails."""
        data = job if isinstance(job, bytes) else pickle_job(job)
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        threading.Thread(target=_write_all, args=(job_write, data), daemon=True).start()
        try:
            request_id, replies = self._request(job_read, result_write)
            try:
                started = replies.get(timeout=START_SECONDS)
                if "failed" in started:  # the monitor may report before the zygote says it started
                    raise SandboxError(started["failed"])
                if started.get("pid") is None:
                    raise SandboxError(f"the grading sandbox stopped: {self._log_tail()}")
                return self._collect(request_id, result_read, replies)
            finally:
                del self._replies[request_id]
        finally:
            os.close(result_read)

    def _request(self, job_read: int, result_write: int) -> tuple[int, queue.Queue]:
        """Ask the zygote for a child that reads ``job_read`` and writes ``result_write`` (both are
        closed here); the request's id and the queue its replies arrive on."""
        with self._lock:
            request_id, self._next_id = self._next_id, self._next_id + 1
            replies = self._replies[request_id] = queue.Queue()
            try:
                if self._process.poll() is not None:  # the zygote died (out of memory, say): start a new one
                    self._start()
                request = {"id": request_id, "limits": asdict(self.limits)}
                socket.send_fds(self._socket, [json.dumps(request).encode()], [job_read, result_write])
            except OSError as error:
                del self._replies[request_id]
                raise SandboxError(f"the grading sandbox stopped: {error}; {self._log_tail()}") from error
            except SandboxError:
                del self._replies[request_id]
                raise
            finally:
                os.close(job_read)
                os.close(result_write)
        return request_id, replies

    def _collect(self, request_id: int, result_read: int, replies: queue.Queue) -> SandboxRun:
        run, frames, received = SandboxRun(), wire.FrameReader(), 0
        start = time.monotonic()
        deadline = start + self.limits.wall_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = True
                break
            readable, _, _ = select.select([result_read], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(result_read, 1 << 20)
            if not chunk:
                run.exit_code = self._exit_code(replies)  # the child closed its end: it is ending by itself
                break
            received += len(chunk)
            if received > self.limits.output_bytes:
                run.overflowed = True
                break
            if not self._decode(frames.feed(chunk), run) or run.events[-1:] == [{"event": "done"}]:
                break
        if run.exit_code is None:
            self._stop(request_id)
            run.exit_code = self._exit_code(replies)
        run.seconds = time.monotonic() - start
        return run

    @staticmethod
    def _decode(messages: list[bytes], run: SandboxRun) -> bool:
        for message in messages:
            try:
                event = wire.loads(message)
            except wire.WireError as error:
                run.malformed = str(error)
                return False
            if type(event) is not dict:
                run.malformed = "an event is not a dict"
                return False
            run.events.append(event)
        return True

    def _stop(self, request_id: int) -> None:
        """Have the zygote kill the job's monitor: the runner dies with it, and with the runner its namespace."""
        with self._lock:
            try:
                self._socket.send(json.dumps({"kill": request_id}).encode())
            except OSError:
                pass  # the zygote is gone, and its children with it

    def _exit_code(self, replies: queue.Queue) -> int | None:
        """The runner's exit status, from the zygote; :class:`SandboxError` when the monitor reported
        that the sandbox itself failed (a report the learner's code has no way to send)."""
        while True:
            try:
                reply = replies.get(timeout=EXIT_GRACE_SECONDS)
            except queue.Empty:
                return None
            if "failed" in reply:
                raise SandboxError(reply["failed"])
            if "status" in reply:
                return reply["status"]

    def close(self) -> None:
        """Stop the zygote and every process it started."""
        if hasattr(self, "_socket"):
            try:
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes the reply reader, and tells the zygote to stop
            except OSError:
                pass
            self._socket.close()
        if self._process.poll() is None:
            try:
                self._process.wait(timeout=EXIT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
