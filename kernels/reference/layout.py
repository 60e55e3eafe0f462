"""Reference kernels: Concat, Split, Slice, Tile, Pad, Trilu, DepthToSpace and SpaceToDepth."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import (
    all_of,
    attr_in,
    ints,
    norm_axis,
    opt,
    ref,
    s_attr,
)
from optimizer.kernels.registry import KernelFn, KernelSpec, NodeInfo, register


def concat(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Concat along ``axis``."""
    xs = [np.asarray(x) for x in inputs if x is not None]
    return [np.concatenate(xs, axis=norm_axis(int(attrs["axis"]), xs[0].ndim))]


def _split(inputs: list[Any], attrs: dict[str, Any], num_outputs: int | None) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    if opt(inputs, 1) is not None:
        sizes = ints(inputs[1])
    elif "split" in attrs:
        sizes = ints(attrs["split"])
    else:
        n = int(attrs.get("num_outputs", num_outputs or 0))
        if n <= 0:
            raise ValueError("Split needs split sizes, num_outputs or the node's output count")
        # Equal parts; with num_outputs (opset 18) the last one may be smaller.
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(n)]
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def split(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Split by the ``split`` input (opset 13) or attribute, or into ``num_outputs`` parts.

    Without either (opsets < 18) the part count is the node's output count: use
    ``build(node)``, which knows it.
    """
    return _split(inputs, attrs, None)


def _build_split(node: NodeInfo) -> KernelFn:
    count = len(node.output_dtypes) or None

    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return _split(inputs, attrs, count)

    return kernel


def _slice_index(start: int, end: int, step: int, dim: int) -> slice:
    """A Python slice for ONNX's clamping rules (which differ for negative steps)."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, end if end >= 0 else None, step)


def slice_(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Slice: starts/ends/axes attributes (opset < 10) or inputs with optional axes and steps."""
    x = np.asarray(inputs[0])
    if opset < 10:
        starts, ends = ints(attrs["starts"]), ints(attrs["ends"])
        axes = ints(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = ints(inputs[1]), ints(inputs[2])
        axes = ints(inputs[3]) if opt(inputs, 3) is not None else list(range(len(starts)))
        steps = ints(inputs[4]) if opt(inputs, 4) is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(axis, x.ndim)
        index[axis] = _slice_index(start, end, step, x.shape[axis])
    return [np.array(x[tuple(index)])]


def tile(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Tile by the ``repeats`` input."""
    return [np.tile(np.asarray(inputs[0]), ints(inputs[1]))]


def pad(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Pad (constant/reflect/edge/wrap); negative pads crop. Pads are inputs from opset 11."""
    x = np.asarray(inputs[0])
    mode = s_attr(attrs, "mode", "constant")
    if opset < 11:
        pads, value = ints(attrs["pads"]), attrs.get("value", 0.0)
        axes = list(range(x.ndim))
    else:
        pads = ints(inputs[1])
        value = opt(inputs, 2)
        value = 0 if value is None else np.asarray(value).reshape(-1)[0]
        axes = ints(inputs[3]) if opt(inputs, 3) is not None else list(range(x.ndim))
    axes = [norm_axis(a, x.ndim) for a in axes]
    widths = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        widths[a] = [pads[i], pads[i + len(axes)]]
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        return [np.pad(x, widths, constant_values=np.asarray(value, dtype=x.dtype))]
    return [np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])]


def trilu(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Trilu: keep the upper (default) or lower triangle of the last two axes, offset by k."""
    x = np.asarray(inputs[0])
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if opt(inputs, 1) is not None else 0
    return [np.triu(x, k) if attrs.get("upper", 1) else np.tril(x, k)]


def depth_to_space(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """DepthToSpace in DCR (default) or CRD order."""
    x = np.asarray(inputs[0])
    b = int(attrs["blocksize"])
    n, c, h, w = x.shape
    if s_attr(attrs, "mode", "DCR") == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


def space_to_depth(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """SpaceToDepth: the inverse of DepthToSpace in DCR (default) or CRD order (opset 25+)."""
    x = np.asarray(inputs[0])
    b = int(attrs["blocksize"])
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    if s_attr(attrs, "mode", "DCR") == "CRD":
        y = y.transpose(0, 1, 3, 5, 2, 4)
    else:
        y = y.transpose(0, 3, 5, 1, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]


register(ref("Concat", concat))
register(
    KernelSpec(
        name="reference.Split", op="Split", backend="reference", fn=split, builder=_build_split
    )
)
register(ref("Slice", slice_))
register(ref("Tile", tile, since=6))
register(
    ref("Pad", pad, check=attr_in("mode", ("constant", "reflect", "edge", "wrap"), "constant"))
)
register(ref("Trilu", trilu, since=14))
register(ref("DepthToSpace", depth_to_space, check=all_of(attr_in("mode", ("DCR", "CRD"), "DCR"))))
register(ref("SpaceToDepth", space_to_depth, check=attr_in("mode", ("DCR", "CRD"), "DCR")))
