"""Reference kernels: ops that change shape but not values, and shape/constant producers."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import ONNX_TO_NUMPY, axes_arg, ints, norm_axis, opt, ref
from optimizer.kernels.registry import NodeInfo, Support, register


def reshape(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Reshape: 0 copies the input dim (unless ``allowzero``), -1 is inferred."""
    x = np.asarray(inputs[0])
    shape = ints(inputs[1]) if opt(inputs, 1) is not None else ints(attrs["shape"])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [x.reshape(shape)]


def transpose(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Transpose by ``perm`` (default: reverse the axes)."""
    x = np.asarray(inputs[0])
    perm = ints(attrs["perm"]) if "perm" in attrs else None
    return [np.transpose(x, perm)]


def flatten(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Flatten to 2-D at ``axis`` (default 1)."""
    x = np.asarray(inputs[0])
    axis = norm_axis(int(attrs.get("axis", 1)), x.ndim)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def squeeze(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Squeeze the given axes, or every size-1 axis when none are given."""
    x = np.asarray(inputs[0])
    axes = axes_arg(inputs, 1, attrs)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(norm_axis(a, x.ndim) for a in axes))]


def unsqueeze(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Unsqueeze: axes refer to the output's rank."""
    x = np.asarray(inputs[0])
    axes = axes_arg(inputs, 1, attrs) or []
    rank = x.ndim + len(axes)
    return [np.expand_dims(x, tuple(sorted(norm_axis(a, rank) for a in axes)))]


def expand(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Expand: bidirectional broadcast of the input against ``shape``."""
    x = np.asarray(inputs[0])
    shape = np.broadcast_shapes(x.shape, tuple(ints(inputs[1])))
    return [np.array(np.broadcast_to(x, shape))]


def shape(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Shape, sliced by ``start``/``end`` (opset 15), clamped like Python slicing."""
    dims = np.asarray(np.shape(inputs[0]), dtype=np.int64)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    return [dims[start : None if end is None else int(end)]]


def size(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Size: the element count as an int64 scalar."""
    return [np.asarray(np.size(inputs[0]), dtype=np.int64)]


def constant_of_shape(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """ConstantOfShape filled with the one-element ``value`` tensor (default float32 0)."""
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32))).reshape(-1)
    return [np.full(ints(inputs[0]), value[0], dtype=value.dtype)]


def range_(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Range: ``max(ceil((limit - start) / delta), 0)`` elements of the start's type."""
    start, limit, delta = (np.asarray(v).reshape(()) for v in inputs[:3])
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    return [(start + np.arange(count, dtype=start.dtype) * delta).astype(start.dtype)]


def constant(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Constant from ``value`` (a tensor) or one of the ``value_*`` scalar/list attributes."""
    if "value" in attrs:
        return [np.asarray(attrs["value"])]
    if "value_float" in attrs:
        return [np.asarray(attrs["value_float"], dtype=np.float32)]
    if "value_floats" in attrs:
        return [np.asarray(attrs["value_floats"], dtype=np.float32)]
    if "value_int" in attrs:
        return [np.asarray(attrs["value_int"], dtype=np.int64)]
    return [np.asarray(attrs["value_ints"], dtype=np.int64)]


def _constant_check(node: NodeInfo, target: str) -> Support:
    kinds = ("value", "value_float", "value_floats", "value_int", "value_ints")
    if not any(k in node.attrs for k in kinds):
        given = sorted(node.attrs) or ["none"]
        return Support.no(f"constant given as {given} not implemented (supported: {list(kinds)})")
    return Support.yes()


def non_zero(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """NonZero: indices of the non-zero elements, shape (rank, count), row-major order."""
    x = np.asarray(inputs[0])
    return [np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)]


def eye_like(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """EyeLike: ones on diagonal ``k`` of a 2-D tensor shaped like the input."""
    x = np.asarray(inputs[0])
    dtype = x.dtype
    if "dtype" in attrs:
        dtype = ONNX_TO_NUMPY[int(attrs["dtype"])]
    return [np.eye(x.shape[0], x.shape[1], k=int(attrs.get("k", 0)), dtype=dtype)]


register(ref("Reshape", reshape))
register(ref("Transpose", transpose))
register(ref("Flatten", flatten))
register(ref("Squeeze", squeeze))
register(ref("Unsqueeze", unsqueeze))
register(ref("Expand", expand, since=8))
register(ref("Shape", shape))
register(ref("Size", size))
register(ref("ConstantOfShape", constant_of_shape, since=9))
register(ref("Range", range_, since=11))
register(ref("Constant", constant, check=_constant_check))
register(ref("NonZero", non_zero, since=9))
register(ref("EyeLike", eye_like, since=9))
