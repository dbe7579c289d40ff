"""The environment doctor reports what is installed and how to fix what is not."""

import pytest

from tfcourse import doctor


def result_named(results: list[doctor.Finding], name: str) -> doctor.Finding:
    return next(r for r in results if r.name == name)


def pretend_missing(monkeypatch: pytest.MonkeyPatch, distribution: str) -> None:
    """Make the version lookup behave as if ``distribution`` were not installed."""
    real_lookup = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: None if name == distribution else real_lookup(name))


def test_report_has_python_torch_numpy_ok():
    results = doctor.collect_report()
    for name in ("python", "torch", "numpy"):
        result = result_named(results, name)
        assert result.ok and result.group == "required" and result.detail


def test_missing_optional_package_is_reported_but_exit_code_stays_zero(monkeypatch, capsys):
    pretend_missing(monkeypatch, "nbgrader")
    result = result_named(doctor.collect_report(), "nbgrader")
    assert (result.status, result.group, result.fix) == ("missing", "grading", 'pip install -e ".[grading]"')
    assert doctor.run_doctor() == 0
    assert 'pip install -e ".[grading]"' in capsys.readouterr().out


def test_missing_required_package_gives_exit_code_one(monkeypatch, capsys):
    pretend_missing(monkeypatch, "numpy")
    assert result_named(doctor.collect_report(), "numpy").status == "missing"
    assert doctor.run_doctor() == 1
    assert "Required checks failed: numpy" in capsys.readouterr().out


def test_too_old_required_package_is_not_usable(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda name: "2.1.0")
    result = result_named(doctor.collect_report(), "torch")
    assert result.status == "not usable" and result.fix == doctor.TORCH_CPU_FIX


def test_release_reads_leading_numbers():
    assert doctor.release("2.13.0+cpu") == (2, 13, 0)
    assert doctor.release("1.0.4.post1") == (1, 0, 4)
    assert doctor.release("2.5.0rc1") >= doctor.release("2.5")


@pytest.mark.parametrize("cuda_build, fix", [(None, doctor.TORCH_CUDA_FIX), ("12.8", doctor.DRIVER_FIX)])
def test_no_gpu_gets_the_fix_for_its_cause(monkeypatch, cuda_build, fix):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)
    (result,) = doctor.check_cuda()
    assert result.status == "missing" and result.fix == fix
    assert ("CPU-only" in result.detail) == (cuda_build is None)
