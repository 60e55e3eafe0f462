"""Imports every Triton kernel file, so each registers its plan functions (see launch.py)."""

from __future__ import annotations

from optimizer.kernels.triton import (
    conv,  # noqa: F401
    epilogue,  # noqa: F401
    gemm,  # noqa: F401
    pool,  # noqa: F401
)
