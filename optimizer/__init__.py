"""ONNX graph optimizer and deployment compiler.

``optimizer.optimize_model`` runs the pass pipeline with numerical checking; the ``optimize``
command line wraps it. ``optimizer.kernels`` is the kernel library (the repo's ``kernels/``).
"""

from __future__ import annotations

__version__ = "0.1.0"
