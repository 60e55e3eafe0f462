"""Resolution of kernels of kind ``python`` (docs/module-format.md).

The C++ runtime calls :func:`resolve` (through ``optimizer._runtime``) while loading a module
whose kernel table names an entry ``"package.module:function"``. The function is called with no
arguments and returns the kernel: an ``odc_kernel_fn`` address as an ``int``, or an object with
an ``address`` attribute (a Numba ``cfunc``), or a ``ctypes`` function pointer. The objects are
kept alive for the life of the process, so the address stays valid.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import threading

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_resolved: dict[str, tuple[object, int]] = {}


def _address_of(kernel: object, entry: str) -> int:
    if isinstance(kernel, bool):
        raise TypeError(f"{entry} returned a bool, not a kernel address")
    if isinstance(kernel, int):
        return kernel
    address = getattr(kernel, "address", None)
    if isinstance(address, int):
        return address
    if isinstance(kernel, ctypes._CFuncPtr):
        return ctypes.cast(kernel, ctypes.c_void_p).value or 0
    raise TypeError(
        f"{entry} returned {type(kernel).__name__}; expected an int address, an object with "
        "an .address (Numba cfunc) or a ctypes function pointer"
    )


def resolve(entry: str) -> int:
    """The ``odc_kernel_fn`` address for ``entry`` (``"module:function"``); raises on failure."""
    with _lock:
        if entry in _resolved:
            return _resolved[entry][1]
        module_name, sep, function_name = entry.partition(":")
        if not sep or not module_name or not function_name:
            raise ValueError(f"entry {entry!r} is not 'module:function'")
        factory = getattr(importlib.import_module(module_name), function_name)
        kernel = factory()
        address = _address_of(kernel, entry)
        if address <= 0:
            raise ValueError(f"{entry} returned a NULL kernel address")
        _resolved[entry] = (kernel, address)
        logger.debug("python kernel %s at 0x%x", entry, address)
        return address
