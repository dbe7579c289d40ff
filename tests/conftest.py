"""Shared fixtures: every test that takes ``device`` also runs on CUDA when present."""

import pytest
import torch

CUDA = torch.cuda.is_available()

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA device")],
    ),
]

# Tolerances for comparing two implementations of the same maths.
TOLERANCES = {torch.float64: dict(atol=1e-10, rtol=1e-8), torch.float32: dict(atol=1e-5, rtol=1e-4)}


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture
def tol(dtype) -> dict:
    """``atol``/``rtol`` for ``torch.testing.assert_close`` at the test's dtype."""
    return TOLERANCES[dtype]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
