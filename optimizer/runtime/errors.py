"""The runtime's one exception type."""

from __future__ import annotations

from optimizer.errors import ModuleError

__all__ = ["ModuleError"]  # defined with the other error types; the C++ skin raises it
