"""ONNX graph optimizer and deployment compiler.

``optimizer.optimize_model`` runs the pass pipeline with numerical checking; the ``optimize``
command line wraps it. ``optimizer.kernels`` is the kernel library (the repo's ``kernels/``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["OptimizeOptions", "load", "optimize_file", "optimize_model"]


def __getattr__(name: str):
    # Lazy: `import optimizer` stays cheap, and the kernel library can import the package.
    if name in ("OptimizeOptions", "optimize_model", "optimize_file"):
        from optimizer import optimize

        return getattr(optimize, name)
    if name == "load":
        from optimizer.ir import load

        return load
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
