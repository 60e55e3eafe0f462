"""Imports every Triton kernel file, so each registers its plan functions (see launch.py)."""

from __future__ import annotations

from optimizer.kernels.triton import (
    attention,  # noqa: F401
    eltwise,  # noqa: F401
    movement,  # noqa: F401
    norm,  # noqa: F401
    reduce,  # noqa: F401
    resize,  # noqa: F401
)
