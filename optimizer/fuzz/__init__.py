"""``optimize fuzz``: differential fuzzing of a user's model against onnxruntime.

The original model in onnxruntime is the reference; the optimized graph (``graph``), a module
compiled now (``compiled``) or an existing module (``module``) are compared with it on random
input sets (see :mod:`optimizer.fuzz.inputs` for shapes, ranges and distributions) and the
user's samples. :func:`fuzz_model` returns a :class:`FuzzReport`; the command line is
:mod:`optimizer.fuzz.cli`.
"""

from __future__ import annotations

from optimizer.fuzz.runner import FuzzOptions, FuzzReport, fuzz_model
from optimizer.fuzz.targets import BuildOptions

__all__ = ["BuildOptions", "FuzzOptions", "FuzzReport", "fuzz_model"]
