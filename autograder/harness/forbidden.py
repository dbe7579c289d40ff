"""Catching the APIs an exercise asks the learner not to use.

Four complementary nets:

* a static scan of the learner's source for the forbidden names and for imports of the
  course's own packages (it catches aliases such as ``from torch import softmax``);
* tripwires: while the learner's code runs, each forbidden function is replaced by one
  that raises :class:`ForbiddenAPIUsed` (it catches calls the source hides);
* a call watcher (``sys.setprofile``) that spots the original functions when they are
  reached through an alias bound before the tripwires were set;
* the same watcher spots any call into the course's own code (the reference, the engine) at
  any depth: a learner's wrapper around ``tfcourse`` fails like an import of it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from autograder.harness.mismatch import Mismatch

COURSE_PACKAGES = ("tfcourse", "autograder")
HARNESS = "autograder.harness"  # the part of the course's code that runs beside the learner's
_INHERITED = object()  # marks an attribute a class inherits rather than defines


class UnscannableCode(ValueError):
    """Source too deeply nested (or too large) for the static scan to read."""


class ForbiddenAPIUsed(Exception):
    """The learner's code called an API the exercise forbids."""

    def __init__(self, api: str):
        super().__init__(api)
        self.api = api


def _resolve(dotted: str) -> tuple[Any, str] | None:
    """``"torch.nn.functional.softmax"`` -> ``(torch.nn.functional, "softmax")``; also classes like ``torch.Tensor``.

    ``None`` when the package is not installed (then nothing can call it).
    """
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:-1]:
            owner = getattr(owner, attribute)
        return owner, parts[-1]
    return None


def _installed(apis: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    """``(api, owner, attribute)`` for each API whose package is installed."""
    return [(api, *found) for api in apis if (found := _resolve(api)) is not None]


def _tripwire(api: str) -> Callable[..., Any]:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenAPIUsed(api)

    return forbidden


@contextmanager
def forbidden_calls(apis: tuple[str, ...]) -> Iterator[list[str]]:
    """Guard a block: a call of any of ``apis`` by its own name raises :class:`ForbiddenAPIUsed`;
    one through an alias bound earlier, and any call into the course's own code, is appended to
    the yielded list."""
    installed = _installed(apis)
    with _call_watcher(installed) as called, _tripwires(installed):
        yield called


@contextmanager
def _tripwires(installed: list[tuple[str, Any, str]]) -> Iterator[None]:
    """Within the block, each ``(api, owner, name)`` raises :class:`ForbiddenAPIUsed` when called."""
    saved = []
    try:
        for api, owner, name in installed:
            saved.append((owner, name, vars(owner).get(name, _INHERITED)))
            setattr(owner, name, _tripwire(api))
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def _is_course_code(frame: Any) -> bool:
    """Whether ``frame`` runs the course's own code (the reference, the engine), reached at any depth
    from the learner's: a wrapper around ``tfcourse``, or a helper of ``tfcourse.np``. The harness
    itself (this module's tripwires, the case data a check passes in) is not the course's answer."""
    module = frame.f_globals.get("__name__")
    return isinstance(module, str) and module.split(".")[0] in COURSE_PACKAGES and not in_harness(module)


def in_harness(module: str) -> bool:
    """Whether the module ``module`` belongs to :mod:`autograder.harness`."""
    return module == HARNESS or module.startswith(HARNESS + ".")


@contextmanager
def _call_watcher(installed: list[tuple[str, Any, str]]) -> Iterator[list[str]]:
    """Yield a list that fills with the APIs called (by any name) within the block."""
    originals = {}
    for api, owner, name in installed:
        function = getattr(owner, name)
        originals[id(getattr(function, "__code__", function))] = api
    called: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        target = arg if event == "c_call" else frame.f_code if event == "call" else None
        if target is not None and id(target) in originals:
            called.append(originals[id(target)])
        elif event == "call" and _is_course_code(frame):
            code = frame.f_code  # co_qualname is Python 3.11+; the course supports 3.10
            called.append(f"{frame.f_globals['__name__']}.{getattr(code, 'co_qualname', code.co_name)}")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield called
    finally:
        sys.setprofile(previous)


def _source_of(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def scan_source(obj: Any, apis: tuple[str, ...]) -> list[str]:
    """Forbidden things named in ``obj``'s source: APIs (by their last name) and course imports; nothing
    when its source cannot be scanned (the tripwires still catch the calls)."""
    source = _source_of(obj)
    try:
        return [] if source is None else scan_code(source, apis)
    except UnscannableCode:
        return []


def scan_code(source: str, apis: tuple[str, ...]) -> list[str]:
    """Forbidden things named in Python ``source``: APIs (by their last name) and course imports; nothing
    for source that is not Python. :class:`UnscannableCode` when it is Python nested too deeply to scan."""
    try:
        return _scan_tree(ast.parse(source), apis)
    except (SyntaxError, ValueError):  # not Python (ValueError: a null byte); it cannot run either
        return []
    except (RecursionError, MemoryError):
        raise UnscannableCode("it is nested too deeply") from None


def _scan_tree(tree: ast.AST, apis: tuple[str, ...]) -> list[str]:
    """An attribute is named by its last name (``F.softmax``: ``F`` may be any alias); a name imported
    ``from`` a module counts when that module is of the APIs' libraries (``from torch import softmax``,
    not the learner's ``from helpers import softmax``)."""
    short_names = {api.rsplit(".", 1)[-1]: api for api in apis}
    libraries = {api.split(".")[0] for api in apis}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in short_names and not _is_own_member(node):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in COURSE_PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in COURSE_PACKAGES:
                found.append(node.module)
            if node.module.split(".")[0] in libraries:
                found += [f"{node.module}.{a.name}" for a in node.names if a.name in short_names]
        elif isinstance(node, ast.Name) and node.id in COURSE_PACKAGES:
            found.append(node.id)
    return sorted(set(found))


def forbidden_use(named: list[str]) -> Mismatch:
    """The verdict on code that names forbidden APIs or the course's packages."""
    if any(name.split(".")[0] in COURSE_PACKAGES for name in named):
        return Mismatch("forbidden", f"your code uses {', '.join(named)}: the course's own packages (the reference "
                                     "implementation and the checker) are not available to graded code. "
                                     "Remove the import and write the exercise yourself.")
    return Mismatch("forbidden", f"your code uses {', '.join(named)}, which this exercise asks you to write "
                                 "yourself. Remove it and use basic tensor operations.")


def _is_own_member(node: ast.Attribute) -> bool:
    """``self.softmax``: a method of the learner's own class, not a library function."""
    return isinstance(node.value, ast.Name) and node.value.id == "self"


def is_course_object(obj: Any) -> bool:
    """True when ``obj`` itself comes from ``tfcourse`` or ``autograder`` (the reference, not the learner's)."""
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in COURSE_PACKAGES
