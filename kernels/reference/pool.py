"""Reference kernels: MaxPool, AveragePool, LpPool and their global forms."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import (
    NO_EXOTIC_DTYPES,
    all_of,
    attr_in,
    ints,
    ref,
    spatial_pads,
    windows,
)
from optimizer.kernels.registry import NodeInfo, Support, register


def _geometry(x: np.ndarray, attrs: dict[str, Any]) -> tuple[list[int], ...]:
    """Kernel, strides, dilations, pads, output sizes and extra end padding (ceil_mode)."""
    nsp = x.ndim - 2
    kernel = ints(attrs["kernel_shape"])
    strides = ints(attrs.get("strides", [1] * nsp))
    dilations = ints(attrs.get("dilations", [1] * nsp))
    pads = spatial_pads(x.shape[2:], kernel, strides, dilations, attrs)
    out, extra = [], []
    for i in range(nsp):
        size = x.shape[2 + i]
        span = x.shape[2 + i] + pads[i] + pads[i + nsp] - dilations[i] * (kernel[i] - 1) - 1
        if attrs.get("ceil_mode", 0):
            n = -(-span // strides[i]) + 1
            # The last window must start inside the input or the begin padding.
            if (n - 1) * strides[i] >= size + pads[i]:
                n -= 1
        else:
            n = span // strides[i] + 1
        out.append(n)
        needed = (n - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        extra.append(max(0, needed - (size + pads[i] + pads[i + nsp])))
    return kernel, strides, dilations, pads, out, extra


def _padded(x: np.ndarray, pads: list[int], extra: list[int], value: float) -> np.ndarray:
    nsp = x.ndim - 2
    widths = [(0, 0), (0, 0), *((pads[i], pads[i + nsp] + extra[i]) for i in range(nsp))]
    return np.pad(x, widths, constant_values=value)


def max_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """MaxPool; padding never wins (it is the dtype's lowest value). Indices are not produced."""
    x = np.asarray(inputs[0])
    kernel, strides, dilations, pads, out, extra = _geometry(x, attrs)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    cols = windows(_padded(x, pads, extra, low), kernel, strides, dilations, out)
    if np.issubdtype(x.dtype, np.floating):  # as onnxruntime: a window of padding (or -inf)
        return [np.maximum(cols.max(axis=2), np.finfo(x.dtype).min)]  # gives the lowest finite
    return [cols.max(axis=2)]


def average_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """AveragePool; the divisor counts explicit pads only with ``count_include_pad=1``.

    The extra end padding of ``ceil_mode`` never counts.
    """
    x = np.asarray(inputs[0])
    kernel, strides, dilations, pads, out, extra = _geometry(x, attrs)
    total = windows(
        _padded(x.astype(np.float64), pads, extra, 0.0), kernel, strides, dilations, out
    ).sum(axis=2)
    ones = np.ones((1, 1, *x.shape[2:]))
    if attrs.get("count_include_pad", 0):
        nsp = x.ndim - 2
        ones = np.pad(
            ones,
            [(0, 0), (0, 0), *((pads[i], pads[i + nsp]) for i in range(nsp))],
            constant_values=1.0,
        )
        mask = _padded(ones, [0] * (2 * nsp), extra, 0.0)
    else:
        mask = _padded(ones, pads, extra, 0.0)
    count = windows(mask, kernel, strides, dilations, out).sum(axis=2)
    return [(total / count).astype(x.dtype)]


def lp_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """LpPool: the p-norm of every window (padding contributes zeros)."""
    x = np.asarray(inputs[0])
    p = int(attrs.get("p", 2))
    kernel, strides, dilations, pads, out, extra = _geometry(x, attrs)
    cols = windows(
        _padded(np.abs(x.astype(np.float64)) ** p, pads, extra, 0.0),
        kernel,
        strides,
        dilations,
        out,
    )
    return [(cols.sum(axis=2) ** (1.0 / p)).astype(x.dtype)]


def global_average_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GlobalAveragePool over every spatial axis, keeping them as size 1."""
    x = np.asarray(inputs[0])
    axes = tuple(range(2, x.ndim))
    return [x.astype(np.float64).mean(axis=axes, keepdims=True).astype(x.dtype)]


def global_max_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GlobalMaxPool over every spatial axis, keeping them as size 1."""
    x = np.asarray(inputs[0])
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def global_lp_pool(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GlobalLpPool: the p-norm over every spatial axis."""
    x = np.asarray(inputs[0])
    p = int(attrs.get("p", 2))
    y = (np.abs(x.astype(np.float64)) ** p).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return [(y ** (1.0 / p)).astype(x.dtype)]


def _pool_check(node: NodeInfo, target: str) -> Support:
    if "kernel_shape" not in node.attrs:
        return Support.no("missing kernel_shape attribute")
    if len(node.output_dtypes) > 1 and node.output_dtypes[1] is not None:
        return Support.no("the Indices output of MaxPool is not implemented")
    if node.attrs.get("storage_order", 0):
        return Support.no("storage_order=1 not implemented")
    return Support.yes()


_CHECK = all_of(
    attr_in("auto_pad", ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"), "NOTSET"),
    _pool_check,
    NO_EXOTIC_DTYPES,
)
register(ref("MaxPool", max_pool, check=_CHECK))
register(ref("AveragePool", average_pool, check=_CHECK))
register(ref("LpPool", lp_pool, since=2, check=_CHECK))
register(ref("GlobalAveragePool", global_average_pool, check=NO_EXOTIC_DTYPES))
register(ref("GlobalMaxPool", global_max_pool, check=NO_EXOTIC_DTYPES))
register(ref("GlobalLpPool", global_lp_pool, since=2, check=NO_EXOTIC_DTYPES))
