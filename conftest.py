"""Tests import the project from the repository root and run torch on one thread, as the sweep does."""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    """Runs a test in float32 and in float64 (torch's default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    yield request.param
    torch.set_default_dtype(old)


@pytest.fixture
def float64():
    """Runs a test in float64 (``pytestmark = pytest.mark.usefixtures("float64")`` for a whole file)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
