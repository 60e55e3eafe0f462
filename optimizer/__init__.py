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
        return _load
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")


def _load(path, **options):
    """``optimizer.load(path)``: a compiled module directory -> a runnable ``CompiledModule``
    (``.run(feeds)``, ``.inputs``, ``.outputs``, ``.profile(feeds)``; ``options`` are
    :func:`optimizer.runtime.load`'s, e.g. ``verify_checksums``, ``cuda_graphs``); an ``.onnx``
    file -> the validated graph (``optimizer.ir.Model``) that ``optimize_model`` takes."""
    from pathlib import Path

    if Path(path).is_dir():
        from optimizer.runtime import load as load_module

        return load_module(path, **options)
    if options:
        raise TypeError(f"options {sorted(options)} apply to compiled module directories only")
    from optimizer.ir import load as load_model

    return load_model(path)
