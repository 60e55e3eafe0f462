"""Imports every Triton kernel file, so each registers its plan functions (``plan_for``).

One import line per kernel file; the CUDA lowering imports this module.
"""

from __future__ import annotations

from optimizer.kernels.triton import (
    attention,  # noqa: F401
    cast,  # noqa: F401
    conv,  # noqa: F401
    eltwise,  # noqa: F401
    epilogue,  # noqa: F401
    gemm,  # noqa: F401
    movement,  # noqa: F401
    norm,  # noqa: F401
    pool,  # noqa: F401
    reduce,  # noqa: F401
    resize,  # noqa: F401
    rnn,  # noqa: F401
)
