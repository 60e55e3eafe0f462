"""Error types, in the three tiers of the design guide.

1. Not applicable: not an exception at all (``Match.fail``), logged at debug.
2. User-facing problems (bad input, unsupported model, failed check): ``OptimizerError``
   subclasses with a one-line message; the CLI prints it and exits with ``exit_code``.
3. Broken invariants (our bugs): ``InvariantError`` carrying the pass history.
"""

from __future__ import annotations


class OptimizerError(Exception):
    """A problem the user can act on. ``str(err)`` is one line naming what and where."""

    exit_code = 2


class UsageError(OptimizerError):
    """A command-line option or API argument is malformed or inconsistent."""


class ModelLoadError(OptimizerError):
    """The model file is missing, unreadable, not ONNX, truncated or corrupt."""


class InvalidModelError(OptimizerError):
    """The file is ONNX, but the graph is not valid (checker, dangling values, cycles)."""


class UnsupportedModelError(OptimizerError):
    """The model uses a domain, opset or feature this tool does not handle."""


class CheckFailedError(OptimizerError):
    """The optimized model does not match the original numerically; nothing was written."""

    exit_code = 1


class ModuleError(OptimizerError):
    """A compiled module cannot be loaded or run.

    ``str(err)`` is the runtime's one-line message, e.g. ``invalid module: plan.json:
    values[12]: offset 4096 + nbytes 8192 exceeds arena_size 8192`` or ``kernel
    native.conv2d_nchw (step 7, node 'conv1') failed: ...``.
    """


class InvalidModuleError(ModuleError):
    """A compiled module (or one about to be written) breaks the format's rules."""


class InvariantError(RuntimeError):
    """A pass broke a graph invariant: a bug in this tool, reported with the pass history."""

    def __init__(self, message: str, history: list[str] | None = None) -> None:
        self.history = list(history or [])
        suffix = f" (after passes: {' -> '.join(self.history)})" if self.history else ""
        super().__init__(message + suffix)
