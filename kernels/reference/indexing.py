"""Reference kernels: gathers, scatters and OneHot."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import attr_in, norm_axis, ref, s_attr
from optimizer.kernels.registry import register

_REDUCTIONS = ("none", "add", "mul", "max", "min")
_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _wrap(indices: np.ndarray, dim: int | np.ndarray) -> np.ndarray:
    """Negative indices count from the end."""
    indices = np.asarray(indices, dtype=np.int64)
    return np.where(indices < 0, indices + dim, indices)


def gather(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Gather along ``axis`` (default 0)."""
    x = np.asarray(inputs[0])
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    return [np.take(x, _wrap(inputs[1], x.shape[axis]), axis=axis)]


def gather_elements(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GatherElements: ``y[i][j] = x[idx[i][j]][j]`` for axis 0, and so on."""
    x = np.asarray(inputs[0])
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    return [np.take_along_axis(x, _wrap(inputs[1], x.shape[axis]), axis=axis)]


def gather_nd(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GatherND with ``batch_dims`` leading batch axes."""
    x, idx = np.asarray(inputs[0]), np.asarray(inputs[1], dtype=np.int64)
    b = int(attrs.get("batch_dims", 0))
    batch = x.shape[:b]
    k = idx.shape[-1]
    xb = x.reshape(-1, *x.shape[b:])
    ib = idx.reshape(xb.shape[0], -1, k)
    ib = _wrap(ib, np.asarray(x.shape[b : b + k]))
    out = np.stack([xb[i][tuple(ib[i].T)] for i in range(xb.shape[0])])
    return [out.reshape(*batch, *idx.shape[b:-1], *x.shape[b + k :])]


def scatter_nd(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """ScatterND with optional reduction (add/mul from opset 16, max/min from 18)."""
    y = np.array(inputs[0], copy=True)
    idx = np.asarray(inputs[1], dtype=np.int64)
    updates = np.asarray(inputs[2])
    k = idx.shape[-1]
    flat_idx = _wrap(idx.reshape(-1, k), np.asarray(y.shape[:k]))
    flat_upd = updates.reshape(-1, *y.shape[k:])
    reduction = s_attr(attrs, "reduction", "none")
    for i, u in zip(flat_idx, flat_upd):
        where = tuple(i)
        y[where] = u if reduction == "none" else _UFUNC[reduction](y[where], u)
    return [y]


def scatter_elements(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """ScatterElements along ``axis`` with optional reduction."""
    y = np.array(inputs[0], copy=True)
    axis = norm_axis(int(attrs.get("axis", 0)), y.ndim)
    idx = _wrap(inputs[1], y.shape[axis])
    updates = np.asarray(inputs[2])
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    where = tuple(np.broadcast_arrays(*grid))
    reduction = s_attr(attrs, "reduction", "none")
    if reduction == "none":
        y[where] = updates
    else:
        _UFUNC[reduction].at(y, where, updates)
    return [y]


def one_hot(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """OneHot(indices, depth, values=[off, on]) along ``axis`` (default -1)."""
    depth = int(np.asarray(inputs[1]).reshape(-1)[0])
    off, on = np.asarray(inputs[2]).reshape(-1)[:2]
    idx = np.asarray(inputs[0]).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    axis = norm_axis(int(attrs.get("axis", -1)), idx.ndim + 1)
    hot = idx[..., None] == np.arange(depth)
    hot = np.moveaxis(hot, -1, axis)
    return [np.where(hot, on, off).astype(np.asarray(inputs[2]).dtype)]


register(ref("Gather", gather))
register(ref("GatherElements", gather_elements, since=11))
register(ref("GatherND", gather_nd, since=11))
register(ref("ScatterND", scatter_nd, since=11, check=attr_in("reduction", _REDUCTIONS, "none")))
register(
    ref(
        "ScatterElements",
        scatter_elements,
        since=11,
        check=attr_in("reduction", _REDUCTIONS, "none"),
    )
)
register(ref("OneHot", one_hot, since=9))
