"""Binders for reductions (``reduce_f32``) and decomposed layer norm groups (``layer_norm_f32``).

``SINGLE`` maps the Reduce* ops to their binder (merged into ``bind._SINGLE``);
``bind_layer_norm_group`` binds a ``layer_norm`` group of the partitioner (``fuse_norm.py``).
"""

from __future__ import annotations

import math

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node, Value
from optimizer.lower.partition import FusionGroup
from optimizer.module.writer import KernelBinding

# op codes of reduce_f32 (params.md)
REDUCE_OPS = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4,
              "ReduceSumSquare": 5, "ReduceL1": 6, "ReduceL2": 7, "ReduceLogSum": 8,
              "ReduceLogSumExp": 9}  # fmt: skip


def _axes_from_input(op: str, opset: int) -> bool:
    """Whether ``op`` takes its axes as input 1 at ``opset`` (ReduceSum from 13, others 18)."""
    return opset >= (13 if op == "ReduceSum" else 18)


def reduce_flags(node: Node, opset: int, rank: int) -> list[int]:
    """Per dim of the input, 1 if reduced (axes, noop_with_empty_axes resolved), or Reject."""
    entry = "reduce_f32"
    if _axes_from_input(node.op, opset):
        v = node.inputs[1] if len(node.inputs) > 1 and not ir.is_empty(node.inputs[1]) else None
        if v is None:
            axes: list[int] = []
        else:
            array = ir.const_value(v)
            if array is None:
                raise _b.Reject(entry, "axes must be a constant input")
            axes = [int(a) for a in np.asarray(array).reshape(-1)]
    else:
        axes = list(ir.attr_ints(node, "axes", []) or [])
    if not axes:
        noop = ir.attr_int(node, "noop_with_empty_axes", 0) if opset >= 13 else 0
        return [0 if noop else 1] * rank
    flags = [0] * rank
    for a in axes:
        if not -rank <= a < rank:
            raise _b.Reject(entry, f"axis {a} out of range for rank {rank}")
        if flags[a % rank]:
            raise _b.Reject(entry, f"axis {a} given twice")
        flags[a % rank] = 1
    return flags


def bind_reduce(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    entry = "reduce_f32"
    x, out = node.inputs[0], group.outputs[0]
    if len(group.outputs) != 1 or out is None:
        raise _b.Reject(entry, "one output expected")
    _b._require_f32(entry, [x, out])
    xs = _b._shape(x)
    flags = reduce_flags(node, opset, len(xs))
    keep = ir.attr_int(node, "keepdims", 1)
    expected = [1 if f else d for d, f in zip(xs, flags)] if keep else [
        d for d, f in zip(xs, flags) if not f]  # fmt: skip
    if list(_b._shape(out)) != expected:
        raise _b.Reject(entry, f"output shape {list(_b._shape(out))} != {expected}")
    return _b._builtin(entry, [x], [out], [REDUCE_OPS[node.op], *flags], [])


SINGLE = {op: bind_reduce for op in REDUCE_OPS}


def _affine_input(graph: Graph, group: FusionGroup, source: Value | None,
                  array: np.ndarray, n: int, name: str) -> Value:  # fmt: skip
    """A constant of ``n`` float32 elements holding ``array`` (``source`` itself when it does)."""
    flat = np.ascontiguousarray(np.asarray(array, dtype=np.float32).reshape(-1))
    if flat.size != n:
        raise _b.Reject("layer_norm_f32", f"{name} has {flat.size} elements, {n} expected")
    if source is not None:
        current = ir.const_value(source)
        if current is not None and current.size == n and current.dtype == np.float32:
            return source
    value = ir.make_constant(graph, flat, f"{group.name}_{name}")
    group.inputs.append(value)
    return value


def bind_layer_norm_group(graph: Graph, group: FusionGroup) -> KernelBinding:
    """A decomposed layer norm (``partition.LAYER_NORM``) as one ``layer_norm_f32`` call."""
    entry = "layer_norm_f32"
    norm = group.norm
    if norm is None:
        raise _b.Reject(entry, "layer_norm group without roles")
    out = group.outputs[0]
    _b._require_f32(entry, [norm.x, out])
    xs = _b._shape(norm.x)
    if _b._shape(out) != xs:
        raise _b.Reject(entry, "the result must have X's shape")
    n = math.prod(xs[norm.axis :])
    scale = bias = None
    if norm.scale is not None or norm.bias is not None:
        gamma = norm.scale if norm.scale is not None else np.ones(n, np.float32)
        scale = _affine_input(graph, group, norm.scale_value, gamma, n, "scale")
    if norm.bias is not None:
        bias = _affine_input(graph, group, norm.bias_value, norm.bias, n, "bias")
    return _b._builtin(entry, [norm.x, scale, bias], [out], [norm.axis], [norm.epsilon])


from optimizer.lower import bind as _b  # noqa: E402  (bind imports this module for _SINGLE)
