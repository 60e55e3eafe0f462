"""Fast NumPy evaluators for constant folding, one per op type, registered in ``EVALUATORS``.

They cover the vocabulary of shape subgraphs (Shape, Gather, Unsqueeze, Concat, Reshape,
Slice, ...) and small arithmetic, where building a reference-evaluator model per node would
dominate folding time. Each one follows the ONNX spec for the opsets it is called with
(attribute vs input axes, integer division truncating toward zero, exact output dtypes) and
raises :class:`CannotEvaluate` for inputs it does not handle; :func:`evaluate` then falls
back to ONNX's reference evaluator (``ir.evaluate_node``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from optimizer import ir

Inputs = Sequence[np.ndarray | None]
Evaluator = Callable[[ir.Node, Inputs, int], list[np.ndarray]]

# ONNX TensorProto element types NumPy represents natively (bfloat16, float8, int4 and
# strings are left to the reference evaluator or not folded at all).
ONNX_TO_NUMPY: dict[int, type] = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}
FOLDABLE_DTYPES = frozenset(np.dtype(t) for t in ONNX_TO_NUMPY.values())


class CannotEvaluate(Exception):
    """The fast evaluator does not handle these inputs (not an error: fall back or skip)."""


def evaluate(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    """The node's outputs: the registered evaluator if any, else ONNX's reference evaluator.

    Raises:
        Exception: whatever the evaluation raises; callers treat it as "not foldable".
    """
    fast = EVALUATORS.get(node.op) if (node.domain or "") in ("", "ai.onnx") else None
    if fast is not None:
        try:
            with np.errstate(all="ignore"):
                return fast(node, inputs, opset)
        except CannotEvaluate:
            pass
    return ir.evaluate_node(node, list(inputs), opset)


# -- helpers -----------------------------------------------------------------------------------


def _input(inputs: Inputs, index: int) -> np.ndarray | None:
    return inputs[index] if len(inputs) > index else None


def _ints(array: np.ndarray | None) -> list[int] | None:
    return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]


def _axes(
    node: ir.Node, inputs: Inputs, opset: int, since: int, index: int = 1
) -> list[int] | None:
    """Axes from the attribute (before ``since``) or from input ``index`` (from ``since`` on)."""
    if opset >= since:
        return _ints(_input(inputs, index))
    return ir.attr_ints(node, "axes")


def _normalize(axes: Sequence[int], rank: int) -> list[int]:
    out = [a + rank if a < 0 else a for a in axes]
    if any(not 0 <= a < rank for a in out) or len(set(out)) != len(out):
        raise CannotEvaluate(f"axes {list(axes)} invalid for rank {rank}")
    return out


def shape_dims(node: ir.Node, dims: Sequence) -> list:
    """The part of ``dims`` a Shape node returns (its ``start``/``end``, opset 15)."""
    start = ir.attr_int(node, "start", 0)
    end = ir.attr_int(node, "end")
    # Python slicing clamps and wraps negative bounds exactly as the ONNX spec says.
    return list(dims)[start:end]


def _slice_bounds(dim: int, start: int, end: int, step: int) -> slice:
    """ONNX Slice bounds for one axis (clamping differs from Python for negative steps)."""
    if step == 0:
        raise CannotEvaluate("Slice step 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


# -- evaluators --------------------------------------------------------------------------------


def _shape(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    return [np.array(shape_dims(node, inputs[0].shape), dtype=np.int64)]


def _size(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    return [np.array(inputs[0].size, dtype=np.int64)]


def _gather(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    data, indices = inputs[0], inputs[1]
    axis = _normalize([ir.attr_int(node, "axis", 0)], data.ndim)[0]
    # np.take wraps negative indices like ONNX and raises on out-of-range ones.
    return [np.take(data, indices.astype(np.int64), axis=axis)]


def _unsqueeze(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x = inputs[0]
    axes = _axes(node, inputs, opset, since=13)
    if not axes:
        raise CannotEvaluate("Unsqueeze without axes")
    return [np.expand_dims(x, tuple(_normalize(axes, x.ndim + len(axes))))]


def _squeeze(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x = inputs[0]
    axes = _axes(node, inputs, opset, since=13)
    if axes is None:
        return [np.squeeze(x)]
    axes = _normalize(axes, x.ndim)
    if any(x.shape[a] != 1 for a in axes):
        raise CannotEvaluate("Squeeze of a dimension that is not 1")
    return [np.squeeze(x, axis=tuple(axes))]


def _concat(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    arrays = [a for a in inputs if a is not None]
    if len({a.dtype for a in arrays}) != 1:
        raise CannotEvaluate("Concat of mixed dtypes")
    axis = _normalize([ir.attr_int(node, "axis", 0)], arrays[0].ndim)[0]
    return [np.concatenate(arrays, axis=axis)]


def _reshape(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    data, shape = inputs[0], _input(inputs, 1)
    if shape is None:
        raise CannotEvaluate("Reshape with a shape attribute (opset < 5)")
    allowzero = ir.attr_int(node, "allowzero", 0) if opset >= 14 else 0
    target = _ints(shape)
    if not allowzero:
        if any(s == 0 and i >= data.ndim for i, s in enumerate(target)):
            raise CannotEvaluate("Reshape copies a dimension the input does not have")
        target = [data.shape[i] if s == 0 else s for i, s in enumerate(target)]
    elif 0 in target and -1 in target:
        raise CannotEvaluate("Reshape allowzero with both 0 and -1")
    return [np.reshape(data, target)]


def _cast(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x, to = inputs[0], node.attrs.get("to")
    if not isinstance(to, int) or to not in ONNX_TO_NUMPY or x.dtype not in FOLDABLE_DTYPES:
        raise CannotEvaluate(f"Cast to {to!r}")
    dtype = np.dtype(ONNX_TO_NUMPY[to])
    if x.dtype.kind == "f" and dtype.kind in "iu":
        # Float -> int of NaN, inf or out-of-range values is undefined: leave it to run time.
        info = np.iinfo(dtype)
        if not np.all(np.isfinite(x)) or np.any((x < info.min) | (x > info.max)):
            raise CannotEvaluate("Cast of a non-representable float to an integer")
    return [x.astype(dtype)]


def _slice(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    data = inputs[0]
    if opset < 10:
        starts, ends = ir.attr_ints(node, "starts"), ir.attr_ints(node, "ends")
        axes, steps = ir.attr_ints(node, "axes"), None
    else:
        starts, ends = _ints(_input(inputs, 1)), _ints(_input(inputs, 2))
        axes, steps = _ints(_input(inputs, 3)), _ints(_input(inputs, 4))
    if starts is None or ends is None or len(starts) != len(ends):
        raise CannotEvaluate("Slice without matching starts/ends")
    axes = _normalize(axes if axes is not None else range(len(starts)), data.ndim)
    steps = steps if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        index[axis] = _slice_bounds(data.shape[axis], start, end, step)
    return [data[tuple(index)]]


def range_scalars(*values: np.ndarray) -> list[np.ndarray]:
    """Range's inputs as 0-d arrays. The spec wants scalars; onnxruntime also takes
    one-element tensors (the AffineGrid function body passes ``[n]``), and so does folding."""
    out = []
    for value in values:
        value = np.asarray(value)
        if value.size != 1:
            raise CannotEvaluate(f"Range input of shape {value.shape}: not a scalar")
        out.append(value.reshape(()))
    return out


def range_length(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> int:
    """Number of elements of ``Range(start, limit, delta)``."""
    start, limit, delta = range_scalars(start, limit, delta)
    if start.dtype.kind in "iu":
        s, lim, d = int(start), int(limit), int(delta)
        if d == 0:
            raise CannotEvaluate("Range delta 0")
        return max(-((s - lim) // d), 0)  # ceil((limit - start) / delta) in exact integers
    return max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)


def _range(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    start, limit, delta = range_scalars(inputs[0], inputs[1], inputs[2])
    if start.dtype.kind not in "iu":
        raise CannotEvaluate("float Range: the reference evaluator decides rounding")
    n = range_length(start, limit, delta)
    return [(start + delta * np.arange(n, dtype=start.dtype)).astype(start.dtype)]


def _expand(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x, shape = inputs[0], tuple(_ints(inputs[1]))
    if any(s < 0 for s in shape):
        raise CannotEvaluate("Expand to a negative dimension")
    return [np.broadcast_to(x, np.broadcast_shapes(x.shape, shape))]


def _constant_of_shape(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    shape = _ints(inputs[0])
    if any(s < 0 for s in shape):
        raise CannotEvaluate("ConstantOfShape with a negative dimension")
    value = node.attrs.get("value")
    fill = ir.const_value(value) if ir.is_constant(value) else np.zeros(1, dtype=np.float32)
    if fill is None or fill.size != 1:
        raise CannotEvaluate("ConstantOfShape value is not a one-element tensor")
    return [np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)]


def _same_dtype(inputs: Inputs) -> np.dtype:
    dtypes = {a.dtype for a in inputs if a is not None}
    if len(dtypes) != 1:
        raise CannotEvaluate(f"mixed input dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop()


def _elementwise(fn: Callable[..., np.ndarray], keep_dtype: bool = True) -> Evaluator:
    def run(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
        dtype = _same_dtype(inputs)
        out = np.asarray(fn(*[a for a in inputs if a is not None]))
        return [out.astype(dtype, copy=False) if keep_dtype else out]

    return run


def _div(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    a, b = inputs[0], inputs[1]
    dtype = _same_dtype(inputs)
    if dtype.kind not in "iu":
        return [np.divide(a, b).astype(dtype, copy=False)]
    if np.any(b == 0):
        raise CannotEvaluate("integer division by zero")
    q = np.floor_divide(a, b)
    # ONNX integer Div truncates toward zero (like C); floor division rounds negative
    # inexact quotients one further down.
    return [np.where((q < 0) & (q * b != a), q + 1, q).astype(dtype, copy=False)]


def _where(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    cond, x, y = inputs
    _same_dtype([x, y])
    return [np.where(cond, x, y).astype(x.dtype, copy=False)]


def _transpose(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    perm = ir.attr_ints(node, "perm")
    return [np.transpose(inputs[0], perm)]


def _identity(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    return [inputs[0]]


def _sqrt(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    if inputs[0].dtype.kind != "f":
        raise CannotEvaluate("Sqrt of a non-float tensor")
    return [np.sqrt(inputs[0])]


def _reduce_prod(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x = inputs[0]
    axes = _axes(node, inputs, opset, since=18)
    keepdims = bool(ir.attr_int(node, "keepdims", 1))
    if not axes:
        if opset >= 18 and ir.attr_int(node, "noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    axes = _normalize(axes, x.ndim)
    return [np.prod(x, axis=tuple(axes), keepdims=keepdims, dtype=x.dtype)]


def _min_max(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def run(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
        arrays = [a for a in inputs if a is not None]
        dtype = _same_dtype(arrays)
        if dtype.kind == "f" and any(np.isnan(a).any() for a in arrays):
            raise CannotEvaluate("NaN in Min/Max: the reference evaluator decides")
        return [np.asarray(functools.reduce(fn, arrays)).astype(dtype, copy=False)]

    return run


def _tile(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x, repeats = inputs[0], _ints(inputs[1])
    if len(repeats) != x.ndim or any(r < 0 for r in repeats):
        raise CannotEvaluate("Tile repeats do not match the rank")
    return [np.tile(x, repeats)]


def _flatten(node: ir.Node, inputs: Inputs, opset: int) -> list[np.ndarray]:
    x = inputs[0]
    axis = ir.attr_int(node, "axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise CannotEvaluate(f"Flatten axis {axis} out of range")
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis:], dtype=np.int64))
    return [x.reshape(outer, inner)]


EVALUATORS: dict[str, Evaluator] = {
    "Shape": _shape,
    "Size": _size,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Reshape": _reshape,
    "Cast": _cast,
    "Slice": _slice,
    "Range": _range,
    "Expand": _expand,
    "ConstantOfShape": _constant_of_shape,
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _div,
    "Equal": _elementwise(np.equal, keep_dtype=False),
    "Less": _elementwise(np.less, keep_dtype=False),
    "LessOrEqual": _elementwise(np.less_equal, keep_dtype=False),
    "Greater": _elementwise(np.greater, keep_dtype=False),
    "GreaterOrEqual": _elementwise(np.greater_equal, keep_dtype=False),
    "Where": _where,
    "Transpose": _transpose,
    "Identity": _identity,
    "Neg": _elementwise(np.negative),
    "Sqrt": _sqrt,
    "Not": _elementwise(np.logical_not),
    "ReduceProd": _reduce_prod,
    "Min": _min_max(np.minimum),
    "Max": _min_max(np.maximum),
    "Tile": _tile,
    "Flatten": _flatten,
}
