"""Binder of ONNX ``Pad`` to the native ``pad`` kernel (kernels/native/pad.cc, params.md).

The kernel takes the mode, the pads (begin; end over every axis, negative = crop) and the
constant's bit pattern as iparams, so pads, axes and the constant value must be known at compile
time; anything else is rejected (the group then falls back to the reference kernel).
"""

from __future__ import annotations

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node
from optimizer.lower.partition import FusionGroup
from optimizer.module.writer import KernelBinding

PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


def _const_ints(value, what: str) -> list[int]:
    from optimizer.lower.bind import Reject

    array = ir.const_value(value)
    if array is None:
        raise Reject("pad", f"{what} must be constant")
    return [int(a) for a in np.asarray(array).reshape(-1)]


def value_bits(value, dtype: str) -> int:
    """The constant ``value`` as ``dtype``'s bit pattern, as a signed int64 iparam."""
    array = np.asarray(value).astype(dtype).reshape(-1)[:1]
    if array.size == 0:
        array = np.zeros(1, dtype=dtype)
    raw = array.tobytes() + bytes(8 - array.itemsize)
    return int(np.frombuffer(raw, dtype="<i8")[0])


def bind_pad(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    """``Pad`` -> ``pad``: [mode; pad_begin (r); pad_end (r); value bits]."""
    from optimizer.lower.bind import Reject, _builtin, _opt, _require_movable, _shape

    x, out = node.inputs[0], group.outputs[0]
    dtype = _require_movable("pad", [x, out])
    xs, ys = _shape(x), _shape(out)
    rank = len(xs)
    if rank == 0 or len(ys) != rank:
        raise Reject("pad", "rank 0 or a rank change")
    mode_name = ir.attr_str(node, "mode", "constant") or "constant"
    if mode_name not in PAD_MODES or (mode_name == "wrap" and opset < 19):
        raise Reject("pad", f"mode '{mode_name}'")
    mode = PAD_MODES[mode_name]
    if opset < 11:
        pads = ir.attr_ints(node, "pads", None)
        if pads is None:
            raise Reject("pad", "no pads")
        value = ir.attr_float(node, "value", 0.0)
        axes = list(range(rank))
    else:
        pads = _const_ints(node.inputs[1], "pads") if _opt(node.inputs, 1) is not None else None
        if pads is None:
            raise Reject("pad", "no pads")
        cv = _opt(node.inputs, 2)
        value = 0
        if cv is not None:
            array = ir.const_value(cv)
            if array is None:
                raise Reject("pad", "constant_value must be constant")
            value = np.asarray(array).reshape(-1)[:1]
        axes_v = _opt(node.inputs, 3)
        axes = _const_ints(axes_v, "axes") if axes_v is not None else list(range(rank))
    if len(pads) != 2 * len(axes):
        raise Reject("pad", f"{len(pads)} pads for {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        a = a + rank if a < 0 else a
        if not 0 <= a < rank:
            raise Reject("pad", f"axis {axes[i]} out of range")
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    for d in range(rank):
        if xs[d] + begin[d] + end[d] != ys[d]:
            raise Reject("pad", f"axis {d}: {xs[d]} padded by {begin[d]}, {end[d]} != {ys[d]}")
        kept = xs[d] - max(0, -begin[d]) - max(0, -end[d])
        if kept < 0:
            raise Reject("pad", f"axis {d}: the negative pads crop more than {xs[d]} entries")
        if mode and kept == 0 and ys[d] > 0:
            raise Reject("pad", f"axis {d}: {mode_name} padding of an empty axis")
    bits = value_bits(value, dtype) if mode == 0 else 0
    return _builtin("pad", [x], [out], [mode, *begin, *end, bits], [])
