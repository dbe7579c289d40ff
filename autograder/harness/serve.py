"""What a sandboxed grading process runs: a notebook's code cells and the cases of its checks.

``tfcourse grade`` sends a pickled :class:`Job` to a confined child of the grading zygote
(:mod:`autograder.harness.zygote`). :func:`serve` executes the notebook's code cells in
order and, where a graded cell stands, runs that exercise's cases on the object the
notebook defined, sending every output back as plain data (:mod:`autograder.harness.wire`).

Everything under :mod:`autograder.harness` imports only the standard library, torch, numpy
and itself, never the exercise specifications, the judge or the reference implementation,
so a sandboxed process holds no expected output. Inside the sandbox the course's packages
cannot be imported: a learner's ``from tfcourse.attention import softmax`` binds a stand-in
that raises when called, and ``from autograder import check`` a no-op.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.util
import linecache
import os
import pickle
import signal
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from autograder.harness.calls import MESSAGE_CHARS, Produced, clone, function_output, module_output, raised
from autograder.harness.forbidden import COURSE_PACKAGES, ForbiddenAPIUsed
from autograder.harness.mismatch import Mismatch
from autograder.harness.origin import learner_place
from autograder.harness.wire import dumps, write_frame


@dataclass
class CaseInput:
    """One case's inputs; ``weights`` is the reference's state dict for a module exercise, which runs in
    training mode under ``seed`` when ``training`` is set."""

    args: tuple
    kwargs: dict
    device: torch.device
    dtype: torch.dtype
    init: tuple = ()
    weights: dict[str, torch.Tensor] | None = None
    training: bool = False
    seed: int = 0


@dataclass
class Task:
    """The cases of one exercise, run on the object the notebook binds to ``name``; ``gradients``: a function's
    inputs' gradients are taken too (a module's always are)."""

    name: str
    kind: str
    forbidden: tuple[str, ...]
    cases: list[CaseInput]
    gradients: bool = False


@dataclass
class Job:
    """The notebook's code cells and graded checks in order: each step is source text or a task index;
    ``files`` (relative path -> bytes) are what the notebook's folder holds beside it; ``cell_names`` name each
    source step's cell as the learner finds it in the notebook ("cell 7"; a step not named is "cell N", its
    position among the steps), which is how an error's report names the cell
    (:mod:`autograder.harness.origin`)."""

    steps: list[str | int]
    tasks: list[Task]
    seconds_per_call: float
    files: dict[str, bytes] = field(default_factory=dict)
    cell_names: dict[int, str] = field(default_factory=dict)


def on_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """Unpickling hook: jobs carry tensors on the CPU and name the device they belong on."""
    return tensor.to(device)


class Overtime(BaseException):
    """A cell or a call ran past its time."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`Overtime` inside the block once ``seconds`` of wall time have passed."""
    def expire(signum: int, frame: Any) -> None:
        raise Overtime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Reporter:
    """Sends events to the trusted side as wire messages, one frame each."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, **event: Any) -> None:
        try:
            message = dumps(event)
        except Exception as error:  # an output too big for the memory left, say
            plain = {key: value for key, value in event.items()
                     if key not in ("output", "gradients", "gradient_error", "activations")}
            message = dumps({**plain, "stage": "type", "message": f"the output could not be sent back as data "
                                                                  f"({type(error).__name__}: {error})"[:MESSAGE_CHARS]})
        write_frame(self.fd, message)


def serve(job_fd: int, result_fd: int) -> None:
    """Run the pickled :class:`Job` read from ``job_fd``, sending events to ``result_fd``.

    Events: ``task`` (a check starts), ``case`` (one case's output, gradients and sub-modules' activations, or its
    failure's ``stage`` and ``message``), ``missing`` (the checked name is not defined), ``done``.
    """
    chunks = []
    while chunk := os.read(job_fd, 1 << 20):
        chunks.append(chunk)
    job: Job = pickle.loads(b"".join(chunks))
    reporter = _Reporter(result_fd)
    errors: list[str] = place_files(job.files)
    namespace = _learner_namespace()
    _block_course_packages()
    for index, step in enumerate(job.steps):
        if isinstance(step, str):
            error = _execute(step, job.cell_names.get(index, f"cell {index + 1}"), namespace, job.seconds_per_call)
            if error:
                errors.append(error)
        else:
            _run_task(job, step, namespace, errors, reporter)
    reporter.send(event="done")


def place_files(files: dict[str, bytes]) -> list[str]:
    """Write the files that came with the notebook into the working folder, read-only, and put that
    folder first on ``sys.path`` (as a kernel started there has it), so ``import helpers`` works;
    a description of each file that could not be written."""
    errors = []
    for name, data in files.items():
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            errors.append(f"{name!r} is not a relative file name; it was not written")
            continue
        try:
            os.makedirs(os.path.join(*parts[:-1]) if parts[:-1] else ".", exist_ok=True)
            with open(name, "xb") as file:
                file.write(data)
            os.chmod(name, 0o444)
        except OSError as error:
            errors.append(f"{name!r} could not be written beside the notebook ({error.strerror})")
    sys.path.insert(0, os.getcwd())
    return errors


def _execute(source: str, cell: str, namespace: dict, seconds: float) -> str | None:
    """Run one code cell, named ``cell`` ("cell 7") in its traceback's file name; a one-line description of its
    error, if any."""
    filename = f"<{cell}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        with deadline(seconds):
            exec(compile(source, filename, "exec"), namespace)
    except Overtime:
        return f"{cell} ran longer than {seconds:g} s and was stopped"
    except BaseException as error:  # the learner's cell may raise anything, SystemExit included
        message, place = raised(error).message, learner_place(error)
        return message if place and str(place) in message else f"{cell}: {message}"
    return None


def _run_task(job: Job, index: int, namespace: dict, errors: list[str], reporter: _Reporter) -> None:
    task = job.tasks[index]
    reporter.send(event="task", task=index)
    target = namespace.get(task.name)
    if target is None:
        cause = f" An earlier cell failed: {errors[-1]}" if errors else ""
        failure = Mismatch("raises", f"{task.name} is not defined when its check runs. Define it in the cell "
                                     f"above the check and keep its name.{cause}"[:MESSAGE_CHARS])
        reporter.send(event="missing", task=index, stage=failure.stage, message=failure.message)
        return
    timed_out = None
    for number, case in enumerate(task.cases):
        produced = timed_out or _produce(task, target, case, job.seconds_per_call)
        if produced.failure and produced.failure.stage == "timeout":
            timed_out = Produced(failure=Mismatch("timeout", "not run: an earlier case of this check ran out of time."))
        if produced.failure:
            reporter.send(event="case", task=index, case=number, stage=produced.failure.stage,
                          message=produced.failure.message)
        else:
            reporter.send(event="case", task=index, case=number, output=produced.output,
                          gradients=produced.gradients, gradient_error=produced.gradient_error,
                          activations=produced.activations)


def _produce(task: Task, target: Any, case: CaseInput, seconds: float) -> Produced:
    try:
        with deadline(seconds):
            args, kwargs = clone((case.args, case.kwargs))
            if task.kind == "module":
                return module_output(target, case.init, case.weights, args, kwargs, case.device, case.dtype,
                                     task.forbidden, case.training, case.seed)
            return function_output(target, args, kwargs, task.forbidden, task.gradients)
    except Overtime:
        return Produced(failure=Mismatch("timeout", f"your code ran longer than {seconds:g} s on this case and "
                                                    "was stopped. Look for a loop that never ends."))
    except BaseException as error:  # SystemExit, KeyboardInterrupt and the like from the learner's code
        return Produced(failure=raised(error))


# --- what the learner's code sees inside the sandbox ----------------------------------------------

def _learner_namespace() -> dict[str, Any]:
    """A notebook's globals, with stand-ins for what IPython provides."""
    shell = _Inert("get_ipython()")
    return {"__name__": "__main__", "__builtins__": builtins, "get_ipython": lambda: shell,
            "display": _Inert("display")}


class _Inert:
    """IPython's shell and display: calls do nothing while grading (magics and ``!`` commands included)."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> "_Inert":
        return _Inert(f"{self._name}.{name}")


class _Unavailable(types.ModuleType):
    """A course package inside the sandbox: every attribute is a :class:`_Forbidden` stand-in."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Forbidden(f"{self.__name__}.{name}")


class _Forbidden:
    """Stands for a course API: calling it, or subclassing it, raises :class:`ForbiddenAPIUsed`."""

    def __init__(self, api: str):
        self._api = api

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ForbiddenAPIUsed(self._api)

    def __getattr__(self, name: str) -> "_Forbidden":
        if name.startswith("__"):
            raise AttributeError(name)
        return _Forbidden(f"{self._api}.{name}")

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise ForbiddenAPIUsed(self._api)


class _CoursePackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook that answers every course module with an :class:`_Unavailable` one."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in COURSE_PACKAGES:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        return _Unavailable(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is a stand-in."""


def _no_check(*args: Any, **kwargs: Any) -> None:
    """``check()`` while grading: the grader runs every check itself, from the instructor's notebook."""


def _block_course_packages() -> None:
    """Course modules not yet loaded become stand-ins; ``from autograder import check`` gets a no-op."""
    stub = types.ModuleType("autograder")
    stub.check = _no_check
    stub.__path__ = []
    sys.modules["autograder"] = stub
    for name in [n for n in sys.modules if n.split(".")[0] == "tfcourse"]:
        del sys.modules[name]
    sys.meta_path.insert(0, _CoursePackages())
