"""Reference kernels: reductions, ArgMax/ArgMin, TopK, CumSum and CumProd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from optimizer.kernels.reference._common import NO_EXOTIC_DTYPES, axes_arg, norm_axis, opt, ref
from optimizer.kernels.registry import KernelFn, register


def _wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


# op -> f(x, axes, keepdims); float reductions accumulate in float64.
_REDUCE: dict[str, Callable[[np.ndarray, tuple[int, ...], bool], np.ndarray]] = {
    "ReduceSum": lambda x, ax, k: _wide(x).sum(axis=ax, keepdims=k),
    "ReduceMean": lambda x, ax, k: _wide(x).mean(axis=ax, keepdims=k),
    "ReduceMax": lambda x, ax, k: x.max(axis=ax, keepdims=k),
    "ReduceMin": lambda x, ax, k: x.min(axis=ax, keepdims=k),
    "ReduceProd": lambda x, ax, k: _wide(x).prod(axis=ax, keepdims=k),
    "ReduceL1": lambda x, ax, k: np.abs(_wide(x)).sum(axis=ax, keepdims=k),
    "ReduceL2": lambda x, ax, k: np.sqrt((_wide(x) ** 2).sum(axis=ax, keepdims=k)),
    "ReduceSumSquare": lambda x, ax, k: (_wide(x) ** 2).sum(axis=ax, keepdims=k),
    "ReduceLogSum": lambda x, ax, k: np.log(_wide(x).sum(axis=ax, keepdims=k)),
    "ReduceLogSumExp": lambda x, ax, k: _log_sum_exp(_wide(x), ax, k),
}


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    m = x.max(axis=axes, keepdims=True)
    y = np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axes)


def _reduce(op: str) -> KernelFn:
    f = _REDUCE[op]

    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        axes = axes_arg(inputs, 1, attrs)
        if not axes and not attrs.get("noop_with_empty_axes", 0):
            axes = list(range(x.ndim))
        # With noop_with_empty_axes the reduction runs over no axes: the elementwise part still
        # applies (ReduceSumSquare squares, ReduceLogSum takes the log), as onnxruntime and the
        # ONNX reference implementation do.
        keepdims = bool(attrs.get("keepdims", 1))
        axes_t = tuple(sorted(norm_axis(a, x.ndim) for a in axes or []))
        return [np.asarray(f(x, axes_t, keepdims)).astype(x.dtype)]

    kernel.__doc__ = f"{op}: axes from the attribute (old opsets) or input 1 (new ones)."
    return kernel


def _arg(op: str) -> KernelFn:
    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
        pick = np.argmax if op == "ArgMax" else np.argmin
        if attrs.get("select_last_index", 0):
            flipped = np.flip(x, axis=axis)
            idx = x.shape[axis] - 1 - pick(flipped, axis=axis)
        else:
            idx = pick(x, axis=axis)
        if attrs.get("keepdims", 1):
            idx = np.expand_dims(idx, axis)
        return [idx.astype(np.int64)]

    kernel.__doc__ = f"{op} along ``axis`` (first index of ties unless select_last_index)."
    return kernel


def top_k(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """TopK: k as an attribute (opset < 10) or input 1; ties keep the lower index first."""
    x = np.asarray(inputs[0])
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if opt(inputs, 1) is not None else int(attrs["k"])
    axis = norm_axis(int(attrs.get("axis", -1)), x.ndim)
    largest = attrs.get("largest", 1)
    key = x.astype(np.float64) if np.issubdtype(x.dtype, np.unsignedinteger) else x
    order = np.argsort(-key if largest else key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


def _cumulative(op: str):
    accumulate, neutral = (np.cumsum, 0) if op == "CumSum" else (np.cumprod, 1)

    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        axis = norm_axis(int(np.asarray(inputs[1]).reshape(-1)[0]), x.ndim)
        y = np.flip(x, axis) if attrs.get("reverse", 0) else x
        y = accumulate(_wide(y), axis=axis)
        if attrs.get("exclusive", 0):
            y = np.concatenate(
                [
                    np.full_like(np.take(y, [0], axis=axis), neutral),
                    np.take(y, np.arange(y.shape[axis] - 1), axis=axis),
                ],
                axis=axis,
            )
        if attrs.get("reverse", 0):
            y = np.flip(y, axis)
        return [y.astype(x.dtype)]

    kernel.__doc__ = f"{op} along the axis input, optionally exclusive and/or reversed."
    return kernel


cum_sum = _cumulative("CumSum")


for _op in _REDUCE:
    register(ref(_op, _reduce(_op), check=NO_EXOTIC_DTYPES))
register(ref("ArgMax", _arg("ArgMax"), check=NO_EXOTIC_DTYPES))
register(ref("ArgMin", _arg("ArgMin"), check=NO_EXOTIC_DTYPES))
register(ref("TopK", top_k, check=NO_EXOTIC_DTYPES))
register(ref("CumSum", cum_sum, since=11, check=NO_EXOTIC_DTYPES))
register(ref("CumProd", _cumulative("CumProd"), since=26, check=NO_EXOTIC_DTYPES))
