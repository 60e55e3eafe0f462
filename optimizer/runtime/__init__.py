"""Loading and running compiled modules through the C++ runtime.

``m = optimizer.runtime.load("model_dir")``; ``m.inputs`` / ``m.outputs`` give the signature;
``m.run({"x": array})`` returns ``{name: array}``; ``m.profile(feeds)`` gives per-step times.
Modules that target cuda (format version 2) run on the GPU through the NVIDIA driver, opened at
run time; their ``run`` also takes CUDA tensors with ``__dlpack__`` (torch, CuPy; copied
device-to-device) and ``run(feeds, device_outputs=True)`` keeps the outputs on the device.
The command-line runner is ``odc-run`` (``runner_path()`` finds it). The format is
docs/module-format.md; the runtime is csrc/.
"""

from __future__ import annotations

from optimizer.runtime.errors import ModuleError
from optimizer.runtime.module import (
    CompiledModule,
    StepTactics,
    StepTime,
    TensorInfo,
    load,
    numpy_dtype,
)
from optimizer.runtime.runner import runner_path

__all__ = [
    "CompiledModule",
    "ModuleError",
    "StepTactics",
    "StepTime",
    "TensorInfo",
    "load",
    "numpy_dtype",
    "runner_path",
]
