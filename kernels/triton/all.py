"""Imports every Triton kernel file, so each registers its plan functions (``plan_for``).

One import line per kernel file; the CUDA lowering imports this module.
"""

from __future__ import annotations

from optimizer.kernels.triton import cast  # noqa: F401
