"""The reference fallback as a compiled-module kernel: any NumPy reference kernel behind the C ABI.

A module step whose group has no native kernel runs through one ``python``-kind kernel
(``entry = "optimizer.kernels.python_bridge:reference_kernel"``, docs/module-format.md). The
step's ``iparams`` carry a small *program* (JSON, packed 6 bytes per int64 after a magic
number): the group's nodes in order, each with its op, domain, attributes, the opset, and
which kernel inputs / earlier results it reads. At run time the kernel

1. wraps the ``odc_kernel_args`` input buffers as read-only NumPy views (no copy),
2. runs the nodes' reference kernels (``reference.<op>``: ``(inputs, attrs, opset) ->
   outputs``) in order, and
3. copies the results into the preallocated output buffers (shapes must match exactly).

The module stays self-contained (nothing is keyed by process state), so a module compiled in
one process runs in another. The ``CFUNCTYPE`` object lives in this module for the process's
life, so its address stays valid. Errors (a raising kernel, a shape mismatch) come back as the
ABI's one-line message.
"""

from __future__ import annotations

import ctypes
import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from optimizer.kernels.reference._common import ONNX_TO_NUMPY

#: The manifest ``entry`` of the bridge kernel.
ENTRY = "optimizer.kernels.python_bridge:reference_kernel"
#: First iparam of an encoded program (``"ODCPY1"`` in ASCII, as an int).
MAGIC = int.from_bytes(b"ODCPY1", "little")
_CHUNK = 6  # bytes per iparam: values stay below 2**48, exact even through a double

_DTYPES = ONNX_TO_NUMPY  # ABI dtype numbers are ONNX TensorProto numbers


class OdcTensor(ctypes.Structure):
    """``odc_tensor`` of csrc/include/odc/abi.h."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("device_type", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
    ]


class OdcKernelArgs(ctypes.Structure):
    """``odc_kernel_args`` of csrc/include/odc/abi.h."""

    _fields_ = [
        ("inputs", ctypes.POINTER(OdcTensor)),
        ("num_inputs", ctypes.c_int32),
        ("outputs", ctypes.POINTER(OdcTensor)),
        ("num_outputs", ctypes.c_int32),
        ("iparams", ctypes.POINTER(ctypes.c_int64)),
        ("num_iparams", ctypes.c_int32),
        ("fparams", ctypes.POINTER(ctypes.c_double)),
        ("num_fparams", ctypes.c_int32),
        ("workspace", ctypes.c_void_p),
        ("workspace_size", ctypes.c_int64),
        ("stream", ctypes.c_void_p),
        ("num_threads", ctypes.c_int32),
    ]


KERNEL_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.POINTER(OdcKernelArgs), ctypes.c_void_p, ctypes.c_int64
)


# -- programs: encoding (compile time) and decoding (run time) ------------------------------------


def encode_attr(value: Any) -> Any:
    """A JSON-able form of an attribute value (tensors tagged with dtype and shape)."""
    if hasattr(value, "values") and hasattr(value, "shape") and not isinstance(value, np.ndarray):
        value = np.asarray(value.values)  # an onnx-graphsurgeon Constant (tensor attribute)
    if isinstance(value, np.ndarray):
        return {"__tensor__": value.dtype.str, "shape": list(value.shape),
                "data": value.reshape(-1).tolist()}  # fmt: skip
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [encode_attr(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"attribute of type {type(value).__name__} cannot be encoded")


def _decode_attr(value: Any) -> Any:
    if isinstance(value, dict) and "__tensor__" in value:
        return np.asarray(value["data"], dtype=np.dtype(value["__tensor__"])).reshape(
            value["shape"]
        )
    if isinstance(value, list):
        return [_decode_attr(v) for v in value]
    return value


def encode_program(program: dict[str, Any]) -> list[int]:
    """``program`` (JSON-able) -> iparams: ``[MAGIC, nbytes, packed bytes...]``."""
    data = json.dumps(program, separators=(",", ":"), allow_nan=False).encode()
    words = [int.from_bytes(data[i : i + _CHUNK], "little") for i in range(0, len(data), _CHUNK)]
    return [MAGIC, len(data), *words]


def decode_program(iparams: list[int]) -> dict[str, Any]:
    """The inverse of :func:`encode_program`."""
    if len(iparams) < 2 or iparams[0] != MAGIC:
        raise ValueError("iparams do not hold a reference-bridge program")
    size = iparams[1]
    data = b"".join(int(w).to_bytes(_CHUNK, "little") for w in iparams[2:])[:size]
    if len(data) != size:
        raise ValueError(f"program truncated: {len(data)} of {size} bytes")
    return json.loads(data.decode())


@dataclass
class _Step:
    fn: Any
    attrs: dict[str, Any]
    inputs: list[int | None]
    outputs: list[int | None]
    op: str
    name: str


@dataclass
class _Program:
    opset: int
    steps: list[_Step]
    outputs: list[int]


def _build(program: dict[str, Any]) -> _Program:
    from optimizer.kernels import registry

    steps = []
    for node in program["nodes"]:
        spec = registry.get(node["kernel"])
        attrs = {k: _decode_attr(v) for k, v in node["attrs"].items()}
        info = registry.NodeInfo(
            op=node["op"], domain=node.get("domain", ""), opset=program["opset"],
            name=node.get("name", ""), attrs=attrs,
        )  # fmt: skip
        steps.append(
            _Step(
                spec.build(info), attrs, node["in"], node["out"], node["op"], node.get("name", "")
            )
        )
    return _Program(program["opset"], steps, program["outputs"])


_cache: dict[bytes, _Program] = {}
_cache_lock = threading.Lock()


def _program_of(args: OdcKernelArgs) -> _Program:
    n = args.num_iparams
    key = ctypes.string_at(args.iparams, n * 8) if n > 0 else b""
    program = _cache.get(key)
    if program is None:
        with _cache_lock:
            program = _cache.get(key)
            if program is None:
                program = _build(decode_program([args.iparams[i] for i in range(n)]))
                _cache[key] = program
    return program


# -- the kernel ---------------------------------------------------------------------------------


def _view(t: OdcTensor, writable: bool) -> np.ndarray | None:
    if not t.data:
        return None
    if t.device_type != 0:
        raise ValueError(f"tensor on device type {t.device_type}, the bridge runs on the CPU")
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise ValueError(f"unsupported element type {t.dtype}")
    shape = tuple(t.shape[i] for i in range(t.ndim))
    count = int(np.prod(shape, dtype=np.int64))
    if t.strides:
        strides = tuple(t.strides[i] * dtype.itemsize for i in range(t.ndim))
        extent = 1 + sum((d - 1) * abs(t.strides[i]) for i, d in enumerate(shape)) if count else 0
    else:
        strides, extent = None, count
    buf = (ctypes.c_char * max(extent * dtype.itemsize, 1)).from_address(t.data)
    flat = np.frombuffer(buf, dtype=dtype, count=extent)
    array = (
        np.lib.stride_tricks.as_strided(flat, shape, strides)
        if strides is not None
        else flat.reshape(shape)
    )
    if not writable:
        array = array.view()
        array.flags.writeable = False
    return array


def _run(args: OdcKernelArgs) -> None:
    program = _program_of(args)
    slots: dict[int, Any] = {}
    for i in range(args.num_inputs):
        slots[i] = _view(args.inputs[i], writable=False)
    for step in program.steps:
        ins = [None if s is None else slots[s] for s in step.inputs]
        while ins and ins[-1] is None:
            ins.pop()
        try:
            results = step.fn(ins, dict(step.attrs), program.opset)
        except Exception as err:
            raise RuntimeError(f"{step.op} '{step.name}': {type(err).__name__}: {err}") from err
        for slot, result in zip(step.outputs, results):
            if slot is not None:
                slots[slot] = result
    if len(program.outputs) != args.num_outputs:
        raise ValueError(
            f"{args.num_outputs} outputs given, the program makes {len(program.outputs)}"
        )
    for k, slot in enumerate(program.outputs):
        out = _view(args.outputs[k], writable=True)
        result = np.asarray(slots[slot])
        if out is None:
            raise ValueError(f"output {k} has no buffer")
        if result.shape != out.shape:
            if result.size != out.size:
                raise ValueError(
                    f"output {k}: computed shape {list(result.shape)} != {list(out.shape)}"
                )
            result = result.reshape(out.shape)
        np.copyto(out, result, casting="unsafe")


def _kernel(args_ptr: Any, error: int, error_size: int) -> int:
    try:
        _run(args_ptr.contents)
        return 0
    except BaseException as err:  # nothing may cross the C boundary
        if error and error_size > 0:
            text = f"reference bridge: {str(err) or repr(err)}".splitlines()[0]
            data = text.encode("utf-8", "replace")[: max(int(error_size) - 1, 0)]
            ctypes.memmove(error, data + b"\0", len(data) + 1)
        return 1


_KERNEL = KERNEL_FN(_kernel)  # kept alive for the process's life


def reference_kernel() -> Any:
    """The ``odc_kernel_fn`` (a ctypes function pointer) the runtime resolves ``ENTRY`` to."""
    return _KERNEL
