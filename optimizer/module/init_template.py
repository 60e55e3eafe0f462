"""The ``__init__.py`` written into every module: the directory imports as a package."""

from __future__ import annotations

INIT_SOURCE = '''"""A compiled ONNX module (onnx-deploy-module, format version 1).

    import my_module
    outputs = my_module.run({"x": array})   # dict of output name -> numpy array

Loading goes through ``optimizer.runtime``, on first use; ``load()`` returns the loaded module
(``inputs``, ``outputs``, ``run``, ``profile``), also reachable as attributes of this package.
"""

from __future__ import annotations

import threading
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent
_lock = threading.Lock()
_loaded = None


def load():
    """The loaded module (loaded once, on first call)."""
    global _loaded
    with _lock:
        if _loaded is None:
            from optimizer import runtime  # installed with the compiler; imported lazily

            _loaded = runtime.load(MODULE_DIR)
        return _loaded


def run(feeds):
    """Runs the module: ``{input name: array}`` -> ``{output name: array}``."""
    return load().run(feeds)


def __getattr__(name):
    if name in ("inputs", "outputs", "profile"):
        return getattr(load(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
'''
