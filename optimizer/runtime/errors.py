"""The runtime's one exception type."""

from __future__ import annotations

from optimizer.errors import OptimizerError


class ModuleError(OptimizerError):
    """A compiled module cannot be loaded or run.

    ``str(err)`` is the runtime's one-line message, e.g. ``invalid module: plan.json:
    values[12]: offset 4096 + nbytes 8192 exceeds arena_size 8192`` or ``kernel
    native.conv2d_nchw (step 7, node 'conv1') failed: ...``.
    """
