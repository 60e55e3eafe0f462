"""Reshape targets computed from Shape ops -> constant targets using ONNX's copy-dim 0.

Exporters write ``x.view(x.size(0), -1)`` and ``q.view(b, s, heads, dim)`` as::

    Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))

With a dynamic batch this cannot be folded, but the dims taken from ``Shape`` are the data's
own dims at the same positions, which is exactly what a ``0`` in a Reshape target means
("copy this dim from the input"). The target becomes the constant ``[0, -1]``; the Shape,
Gather, Unsqueeze and Concat nodes die once nothing else reads them.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from optimizer import ir
from optimizer.ir import Model, Node, Value
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)

# A traced entry of a shape vector: (tensor whose dim it is, dim index), a constant int, or
# UNKNOWN (a single element computed at run time).
UNKNOWN = None
Entry = tuple[Value, int] | int | None


class ReshapeCopyDims(Pass):
    """Turns Reshape targets built from Shape/Gather/Slice/Concat into constants with 0s.

    A target entry that is dim ``j`` of tensor ``T`` becomes ``0`` at output position ``i``
    when the Reshape data's dim ``i`` is provably the same size: ``i == j`` and ``T`` is the
    data itself, or both dims carry the same symbolic name (or the same static size) after
    shape inference. Refuses when any entry cannot be traced, when a constant entry is 0
    under ``allowzero=1``, or when the data's rank is unknown.
    """

    name = "reshape_copy_dims"
    summary = "constant Reshape targets from Shape-derived dims (copy-dim 0)"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for _, node in ir.iter_nodes(model.graph):
            if node.op != "Reshape" or len(node.inputs) < 2 or ir.is_constant(node.inputs[1]):
                continue
            target = _constant_target(node, model.opset)
            if target is None:
                continue
            const = ir.make_constant(
                model.graph, np.asarray(target, dtype=np.int64), f"{node.name}_shape"
            )
            node.inputs[1] = const
            node.attrs.pop("allowzero", None)
            stats["Reshape target made constant"] += 1
        if stats:
            ir.cleanup(model.graph)
        return result(model, stats)


def _constant_target(node: Node, opset: int) -> list[int] | None:
    data, shape_value = node.inputs[0], node.inputs[1]
    entries = _trace(shape_value, opset)
    if entries is None:
        return None
    data_shape = data.shape if not ir.is_constant(data) else list(ir.const_value(data).shape)
    if data_shape is None:
        log.debug("%s: data rank unknown", node.name)
        return None
    allowzero = ir.attr_int(node, "allowzero", 0) == 1
    target: list[int | None] = []
    for i, entry in enumerate(entries):
        if entry is UNKNOWN:
            target.append(UNKNOWN)
            continue
        if isinstance(entry, int):
            if entry == 0 and allowzero:
                return None  # a literal 0 dim; would turn into a copy
            if entry == 0 and i >= len(data_shape):
                return None
            target.append(entry)
            continue
        tensor, j = entry
        size = _dim(tensor, j)
        if isinstance(size, int):
            target.append(size)
        elif i < len(data_shape) and _same_dim(data, i, tensor, j):
            target.append(0)
        else:
            target.append(UNKNOWN)
    return _resolve_unknown(node, target)


def _resolve_unknown(node: Node, target: list[int | None]) -> list[int] | None:
    """One entry the target cannot name statically may still become -1.

    A valid Reshape preserves the element count, so a single unknown entry equals the total
    divided by the product of the others: exactly what -1 means. Only done when every other
    entry is a positive constant (a 0 or an existing -1 would make -1 ambiguous, and empty
    tensors could behave differently).
    """
    unknown = [i for i, t in enumerate(target) if t is UNKNOWN]
    if not unknown:
        return target if sum(1 for t in target if t == -1) <= 1 else None
    if len(unknown) > 1 or any(t is not UNKNOWN and t <= 0 for t in target):
        log.debug("%s: target has %d run-time entries", node.name, len(unknown))
        return None
    return [-1 if t is UNKNOWN else t for t in target]


def _dim(tensor: Value, j: int) -> int | str | None:
    shape = tensor.shape if not ir.is_constant(tensor) else list(ir.const_value(tensor).shape)
    if shape is None or not 0 <= j < len(shape):
        return None
    d = shape[j]
    return int(d) if isinstance(d, (int, np.integer)) and d >= 0 else (d or None)


def _same_dim(data: Value, i: int, tensor: Value, j: int) -> bool:
    if tensor is data and i == j:
        return True
    a, b = _dim(data, i), _dim(tensor, j)
    return isinstance(a, str) and a == b


def _trace(value: Value, opset: int) -> list[Entry] | None:
    """The entries of a 1-D int64 shape vector, or None when one cannot be traced."""
    const = ir.const_value(value)
    if const is not None:
        return [int(v) for v in np.asarray(const).reshape(-1)] if const.ndim <= 1 else None
    node = ir.producer(value)
    if node is None:
        return None
    if node.op == "Concat" and ir.attr_int(node, "axis", 0) in (0, -1):
        out: list[Entry] = []
        for part in node.inputs:
            traced = _trace(part, opset)
            if traced is None:
                if ir.static_shape(part) != (1,):
                    return None
                traced = [UNKNOWN]  # one entry computed at run time
            out.extend(traced)
        return out
    if node.op == "Shape":
        return _shape_range(node, node.inputs[0])
    if node.op in ("Unsqueeze", "Reshape", "Cast") and _is_scalar_to_vector(node, opset):
        return _trace_scalar(node.inputs[0])
    if node.op == "Slice":
        return _trace_slice(node, opset)
    return None


def _shape_range(
    node: Node, tensor: Value, start: int | None = None, end: int | None = None
) -> list[Entry] | None:
    rank = ir.rank(tensor)
    if rank is None:
        return None
    lo = ir.attr_int(node, "start", 0) if start is None else start
    hi = ir.attr_int(node, "end", rank) if end is None else end
    lo, hi = (lo + rank if lo < 0 else lo), (hi + rank if hi < 0 else hi)
    lo, hi = max(0, min(lo, rank)), max(0, min(hi, rank))
    return [(tensor, j) for j in range(lo, hi)]


def _is_scalar_to_vector(node: Node, opset: int) -> bool:
    if node.op == "Cast":
        return False  # Cast keeps rank; only a cast to int64 of a shape would qualify
    src = node.inputs[0]
    return ir.rank(src) == 0 or (
        src.shape is None and ir.producer(src) is not None and ir.producer(src).op == "Gather"
    )


def _trace_scalar(value: Value) -> list[Entry] | None:
    """A scalar: Gather(Shape(T), const idx) -> dim idx of T."""
    node = ir.producer(value)
    if node is None or node.op != "Gather" or ir.attr_int(node, "axis", 0) != 0:
        return None
    idx = ir.const_value(node.inputs[1])
    shape_node = ir.producer(node.inputs[0])
    if idx is None or idx.ndim != 0 or shape_node is None or shape_node.op != "Shape":
        return None
    dims = _shape_range(shape_node, shape_node.inputs[0])
    if dims is None:
        return None
    k = int(idx) + (len(dims) if int(idx) < 0 else 0)
    return [dims[k]] if 0 <= k < len(dims) else None


def _trace_slice(node: Node, opset: int) -> list[Entry] | None:
    if opset < 10 or len(node.inputs) < 3:
        return None
    vals = [ir.const_value(v) if not ir.is_empty(v) else None for v in node.inputs[1:]]
    starts, ends = vals[0], vals[1]
    axes = vals[2] if len(vals) > 2 else None
    steps = vals[3] if len(vals) > 3 else None
    if starts is None or ends is None or starts.size != 1 or ends.size != 1:
        return None
    if (axes is not None and int(axes.reshape(-1)[0]) not in (0, -1)) or (
        steps is not None and int(steps.reshape(-1)[0]) != 1
    ):
        return None
    src = ir.producer(node.inputs[0])
    if src is None or src.op != "Shape":
        return None
    dims = _shape_range(src, src.inputs[0])
    if dims is None:
        return None
    n = len(dims)
    lo, hi = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    lo, hi = (lo + n if lo < 0 else lo), (hi + n if hi < 0 else hi)
    return dims[max(0, min(lo, n)) : max(0, min(hi, n))]
