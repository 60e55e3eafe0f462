"""Triton kernel tests: on a GPU when there is one, else on the CPU under TRITON_INTERPRET=1."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")


@pytest.fixture(scope="session")
def device() -> str:
    """Where the kernels run: ``cuda`` on a GPU machine, ``cpu`` in the interpreter."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device and TRITON_INTERPRET is not set")
    return "cuda"
