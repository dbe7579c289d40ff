"""Every command starts fast: the command line imports torch, matplotlib and nbgrader only in the command
that needs them (``benchmarks/bench_startup.py`` measures the seconds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tfcourse.cli import build_parser

HEAVY = ("torch", "matplotlib", "nbgrader", "nbformat")


def _imported_by(code: str) -> set[str]:
    """The heavy top-level packages a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_importing_the_command_line_and_building_its_parser_imports_no_heavy_package():
    assert _imported_by("import tfcourse.cli\ntfcourse.cli.build_parser()") == set()


@pytest.mark.parametrize("command", ["--help", "grade --help", "check --help", "init --help", "export --help"])
def test_help_imports_no_heavy_package(command):
    code = f"import contextlib, io, tfcourse.cli\nwith contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n    tfcourse.cli.main({command.split()!r})"
    assert _imported_by(code) == set()


def test_options_made_from_the_reference_settings_parse_without_torch():
    code = ("import tfcourse.cli\nargs = tfcourse.cli.build_parser().parse_args(['generate', 'run-folder', '--prompt', "
            "'3 1 4', '--temperature', '0.5'])\nassert args.temperature == 0.5 and 'temperature' in args.settings")
    assert _imported_by(code) == set()


def test_the_experiments_the_command_offers_are_those_it_can_run():
    from tfcourse import experiments
    from tfcourse.settings import EXPERIMENTS

    assert set(EXPERIMENTS) == set(experiments.RUNNERS) == set(experiments.PLOTS)


def test_doctor_reports_the_installation_before_importing_torch():
    assert _imported_by("import tfcourse.doctor\ntfcourse.doctor.check_installation()") == set()
