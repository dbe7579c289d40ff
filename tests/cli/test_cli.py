"""The ``tfcourse`` command line."""

import pytest

from tfcourse.cli import main


def test_doctor_reports_required_items(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for item in ("python", "torch", "numpy"):
        assert f"\n{item} " in out or out.startswith(item)


def test_demo_runs_end_to_end_with_tiny_settings(capsys):
    assert main(["demo", "--reversal-steps", "3", "--lm-steps", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "exact match on 500 unseen sequences" in out
    assert "top-p 0.9" in out and "same tokens: True" in out


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
