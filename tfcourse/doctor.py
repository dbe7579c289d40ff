"""Check that this machine can run the course, and say how to fix what is missing.

Each check gives one :class:`Finding`: the item, the group it belongs to, its status
(``OK``, ``missing`` or ``not usable``), a detail (version, devices, error) and the command
that fixes it. Groups mirror ``pyproject.toml``: ``required`` (the package's own
dependencies), the extras ``book``, ``grading`` and ``dev``, and ``gpu`` for accelerators.
Only a failed ``required`` check makes :func:`run_doctor` return 1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
from dataclasses import dataclass

REQUIRED = "required"
OK, MISSING, NOT_USABLE = "OK", "missing", "not usable"

MIN_PYTHON = "3.10"
TORCH_VERSION = "2.13.0"
TORCH_CPU_FIX = f"pip install torch=={TORCH_VERSION} --index-url https://download.pytorch.org/whl/cpu"
# PyPI's Linux wheels of torch are CUDA builds; --force-reinstall replaces an installed CPU-only build
# (whose version, 2.13.0+cpu, already satisfies ==2.13.0).
TORCH_CUDA_FIX = f"pip install --force-reinstall torch=={TORCH_VERSION}"
DRIVER_FIX = "nvidia-smi (no output: install or update the NVIDIA driver)"
PYTHON_FIX = "uv venv --python 3.11 --seed .venv && . .venv/bin/activate && pip install -e ."
KERNEL_FIX = "pip install ipykernel && python -m ipykernel install --user --name python3"


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: one line of the doctor's table."""

    name: str
    group: str
    status: str
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        """True when the status is ``OK``."""
        return self.status == OK


@dataclass(frozen=True)
class PackageRequirement:
    """An installed distribution the course uses; ``fix`` defaults to installing its group."""

    distribution: str
    group: str
    minimum: str = ""
    fix: str = ""

    @property
    def fix_command(self) -> str:
        """The explicit ``fix``, else ``pip install -e .`` with this requirement's extra."""
        if self.fix:
            return self.fix
        return "pip install -e ." if self.group == REQUIRED else f'pip install -e ".[{self.group}]"'


PACKAGES = [
    PackageRequirement("torch", REQUIRED, minimum="2.5", fix=TORCH_CPU_FIX),
    PackageRequirement("numpy", REQUIRED, minimum="1.24"),
    PackageRequirement("tqdm", REQUIRED, minimum="4.60"),
    PackageRequirement("matplotlib", REQUIRED, minimum="3.7"),
    PackageRequirement("jupyter-book", "book"),
    PackageRequirement("ipywidgets", "book"),
    PackageRequirement("transformers", "book"),
    PackageRequirement("nbgrader", "grading"),
    PackageRequirement("nbformat", "grading"),
    PackageRequirement("nbclient", "grading"),
    PackageRequirement("nh3", "grading"),
    PackageRequirement("jupyter-server-mathjax", "grading"),
    PackageRequirement("pytest", "dev"),
    PackageRequirement("import-linter", "dev"),
    PackageRequirement("hypothesis", "dev"),
]


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, read from its metadata (no import), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", re.split(r"[+a-z]", version)[0]))


def check_python() -> Finding:
    """Python must be at least :data:`MIN_PYTHON`."""
    version = platform.python_version()
    if release(version) >= release(MIN_PYTHON):
        return Finding("python", REQUIRED, OK, version)
    return Finding("python", REQUIRED, NOT_USABLE, f"{version} < {MIN_PYTHON}", PYTHON_FIX)


def check_package(requirement: PackageRequirement) -> Finding:
    """Is the distribution installed, and at least its minimum version?"""
    name, group = requirement.distribution, requirement.group
    version = installed_version(name)
    if version is None:
        return Finding(name, group, MISSING, "not installed", requirement.fix_command)
    if requirement.minimum and release(version) < release(requirement.minimum):
        return Finding(name, group, NOT_USABLE, f"{version} < {requirement.minimum}", requirement.fix_command)
    return Finding(name, group, OK, version)


def probe_device(device: str) -> str:
    """Allocate a small matrix on ``device`` and multiply it; '' when that works, else the error."""
    import torch

    try:
        ones = torch.ones(8, 8, device=device)
        return "" if (ones @ ones).sum().item() == 512 else "wrong matmul result"
    except Exception as error:  # any failure means the device cannot be used
        return f"{type(error).__name__}: {error}"


def device_result(device: str, label: str, fix: str) -> Finding:
    """Probe one device and report it as usable or not."""
    error = probe_device(device)
    if error:
        return Finding(device, "gpu", NOT_USABLE, f"{label}: {error}", fix)
    return Finding(device, "gpu", OK, label)


def check_cuda() -> list[Finding]:
    """CUDA availability and version, then one usable-or-not line per device."""
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda:
            build, fix = f"CUDA {torch.version.cuda} build, no device found", DRIVER_FIX
        else:
            build, fix = "CPU-only torch build", TORCH_CUDA_FIX
        return [Finding("cuda", "gpu", MISSING, f"{build} (every lesson also runs on CPU)", fix)]
    devices = [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    labels = [f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}" for device in devices]
    return [device_result(device, label, TORCH_CUDA_FIX) for device, label in zip(devices, labels)]


def check_mps() -> list[Finding]:
    """Apple-silicon GPU, reported only when this torch build includes MPS support."""
    import torch

    if not torch.backends.mps.is_built():
        return []
    if not torch.backends.mps.is_available():
        return [Finding("mps", "gpu", NOT_USABLE, "built with MPS but no device", "update macOS to 12.3 or newer")]
    return [device_result("mps", "Apple GPU", TORCH_CPU_FIX)]


def check_accelerators() -> list[Finding]:
    """CUDA and MPS devices; nothing to probe when torch itself cannot be imported."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:
        return [Finding("cuda", "gpu", NOT_USABLE, f"torch does not import: {error}", TORCH_CPU_FIX)]
    return check_cuda() + check_mps()


def check_jupyter_kernel() -> Finding:
    """Notebooks need ``ipykernel`` and a ``python3`` kernelspec."""
    absent = [module for module in ("ipykernel", "jupyter_client") if importlib.util.find_spec(module) is None]
    if absent:
        return Finding("jupyter kernel", "grading", MISSING, f"{', '.join(absent)} not installed", KERNEL_FIX)
    from jupyter_client.kernelspec import find_kernel_specs

    specs = find_kernel_specs()
    if "python3" not in specs:
        return Finding("jupyter kernel", "grading", MISSING, "no python3 kernelspec", KERNEL_FIX)
    return Finding("jupyter kernel", "grading", OK, f"python3 at {specs['python3']}")


def check_installation() -> list[Finding]:
    """Python, packages and the Jupyter kernel: read from metadata, nothing heavy imported."""
    return [check_python(), *(check_package(requirement) for requirement in PACKAGES), check_jupyter_kernel()]


def collect_report() -> list[Finding]:
    """Run every check: the installation, then accelerators."""
    return [*check_installation(), *check_accelerators()]


HEADER = ("item", "group", "status", "detail", "fix")


def _cells(results: list[Finding]) -> list[tuple[str, ...]]:
    return [(r.name, r.group, r.status, r.detail, r.fix) for r in results]


def column_widths(results: list[Finding]) -> list[int]:
    """The widths of the first four columns: the widest cell, and room for every status."""
    rows = [HEADER, *_cells(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    widths[2] = max(widths[2], *(len(status) for status in (OK, MISSING, NOT_USABLE)))
    return widths


def format_rows(results: list[Finding], widths: list[int], header: bool = False) -> str:
    """The results in columns of at least ``widths`` (item, group, status, detail), then the fix."""
    rows = ([HEADER] if header else []) + _cells(results)
    widths = [max(width, *(len(row[column]) for row in rows)) for column, width in enumerate(widths)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def run_doctor() -> int:
    """Print the report; return 0 when every required check is OK, else 1.

    The installation's rows come first, at once; the devices' rows follow once torch is
    imported and each device has run a small product (a second or two).
    """
    installation = check_installation()
    widths = column_widths(installation)
    print(format_rows(installation, widths, header=True), flush=True)
    accelerators = check_accelerators()
    if accelerators:
        print(format_rows(accelerators, widths))
    failed = [r.name for r in installation + accelerators if r.group == REQUIRED and not r.ok]
    if failed:
        print(f"\nRequired checks failed: {', '.join(failed)}. Run the commands in the 'fix' column.")
        return 1
    print("\nAll required checks passed; optional items marked otherwise are needed only for their group.")
    return 0
