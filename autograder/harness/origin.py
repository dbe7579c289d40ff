"""Where in the learner's own code an exception arose: the notebook cell (or file) and the line, quoted.

An error raised inside PyTorch has a traceback whose last frames are PyTorch's; the line a
learner can fix is the innermost frame of *their* code. Learner code is any file that is not
part of the Python installation, an installed package (site-packages, torch, numpy) or the
course's own packages (``autograder``, ``tfcourse``): a notebook cell, or a helper file beside
the notebook.

A cell is named the way the learner finds it:

* in the grading sandbox, :mod:`autograder.harness.serve` compiles each cell with the file
  name ``<cell 7>``, 7 being the cell's position in the submitted notebook, counted from 1
  over every cell (text cells included);
* in a learner's own kernel, IPython names a cell's file ``/tmp/ipykernel_NNN/HASH.py`` and
  its shell maps that name back to ``In[5]``; IPython is asked only when it is already loaded.

A frame inside a function or class adds the top-level name the cell defines: "cell 7 (the
cell that defines `DecoderLayer`), line 12".
"""

from __future__ import annotations

import linecache
import os
import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType

import numpy
import torch

from autograder.harness.forbidden import COURSE_PACKAGES

LINE_CHARS = 200  # longest quoted source line
SANDBOX_CELL = re.compile(r"<(cell [^>]+)>")
KERNEL_CELL = re.compile(r".*[/\\]ipykernel_\d+[/\\]\d+\.py")
OLD_KERNEL_CELL = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")  # IPython before 8


def _library_folders() -> tuple[str, ...]:
    """The folders whose files are not the learner's: the Python installation, installed packages, torch, numpy,
    and the course's packages beside this one."""
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    folders.update(site.getsitepackages())
    folders.add(site.getusersitepackages())
    folders.update(str(Path(module.__file__).parent) for module in (torch, numpy))
    course_root = Path(__file__).resolve().parents[2]
    folders.update(str(course_root / package) for package in COURSE_PACKAGES)
    return tuple(sorted({os.path.join(os.path.realpath(folder), "") for folder in folders}))


LIBRARY_FOLDERS = _library_folders()


@dataclass(frozen=True)
class Place:
    """A line of the learner's code: ``where`` (e.g. "cell 7 (the cell that defines `DecoderLayer`), line 12")
    and the line's text (empty when the source is not at hand)."""

    where: str
    line: str

    def __str__(self) -> str:
        return f"{self.where}: `{self.line}`" if self.line else self.where


def is_learner_file(filename: str) -> bool:
    """Whether code compiled from ``filename`` is the learner's: a notebook cell or a file outside the libraries."""
    if filename.startswith("<"):  # code not read from a file: a cell, or generated code (<string>, <frozen ...>)
        return bool(SANDBOX_CELL.fullmatch(filename) or OLD_KERNEL_CELL.fullmatch(filename))
    return not os.path.realpath(filename).startswith(LIBRARY_FOLDERS)


def learner_place(error: BaseException) -> Place | None:
    """The innermost line of the learner's code in ``error``'s traceback (for a ``SyntaxError``, the line that
    does not parse); ``None`` when the error arose outside the learner's code."""
    if isinstance(error, SyntaxError) and error.filename and error.lineno and is_learner_file(error.filename):
        return Place(_where(error.filename, error.lineno, None), _quoted(error.text or ""))
    frame = _innermost_learner_frame(error.__traceback__)
    if frame is None:
        return None
    code, lineno, module_globals = frame
    line = linecache.getline(code.co_filename, lineno, module_globals)
    return Place(_where(code.co_filename, lineno, getattr(code, "co_qualname", None)), _quoted(line))


def _innermost_learner_frame(traceback: TracebackType | None) -> tuple[CodeType, int, dict] | None:
    """The code, line number and globals of the last frame of ``traceback`` that runs the learner's code."""
    found = None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if is_learner_file(code.co_filename):
            found = (code, traceback.tb_lineno, traceback.tb_frame.f_globals)
        traceback = traceback.tb_next
    return found


def _quoted(line: str) -> str:
    line = line.strip()
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 3] + "..."


def _where(filename: str, lineno: int, qualname: str | None) -> str:
    """``filename``'s line in the learner's terms: a cell, with the name it defines, or a file."""
    cell = _cell_name(filename)
    if cell is None:
        return f"{_file_name(filename)}, line {lineno}"
    defines = qualname.split(".")[0] if qualname else "<module>"
    described = f" (the cell that defines `{defines}`)" if not defines.startswith("<") else ""
    return f"{cell}{described}, line {lineno}"


def _cell_name(filename: str) -> str | None:
    """"cell 7" for the sandbox's cells, "cell In[5]" for a kernel's, "a notebook cell" when the kernel cannot
    say; ``None`` for a file."""
    sandbox = SANDBOX_CELL.fullmatch(filename)
    if sandbox:
        return sandbox.group(1)
    old_kernel = OLD_KERNEL_CELL.fullmatch(filename)
    if old_kernel:
        return f"cell In[{old_kernel.group(1)}]"
    if not KERNEL_CELL.fullmatch(filename):
        return None
    label = _ipython_cell_label(filename)
    return f"cell {label}" if label else "a notebook cell"


def _ipython_cell_label(filename: str) -> str | None:
    """IPython's name for a cell's file ("In[5]"), when IPython is loaded and knows it."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython else None
        name = shell.compile.format_code_name(filename) if shell else None
    except Exception:  # an IPython without these names: the cell stays unnamed
        return None
    return str(name[1]) if isinstance(name, tuple) and len(name) == 2 else None


def _file_name(filename: str) -> str:
    """A helper file's path relative to the working folder (the notebook's), or as it is when outside it."""
    path = os.path.realpath(filename)
    here = os.path.join(os.path.realpath(os.getcwd()), "")
    return path[len(here):] if path.startswith(here) else filename
