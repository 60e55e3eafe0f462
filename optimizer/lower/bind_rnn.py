"""Binding of ONNX LSTM and GRU nodes to the native ``lstm_f32`` / ``gru_f32`` kernels.

The kernels (kernels/native/rnn.cc, params.md) take the weights pre-transposed: ``WT[d] =
W[d]^T`` (``[I, G*H]``) and ``RT[d] = R[d]^T`` (``[H, G*H]``), made here from the constant
initializers, so the input projection of every step is one GEMM and the per-step recurrent
projection reads contiguous rows. Everything else keeps its ONNX layout. Rejected (the group
falls back to the reference kernels, with the reason): non-constant W or R, activation lists
other than the defaults, non-float32 tensors, a ``hidden_size`` that disagrees with R.
"""

from __future__ import annotations

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node, Value
from optimizer.lower.bind import Reject, _builtin, _opt, _require_f32, _shape
from optimizer.lower.partition import FusionGroup
from optimizer.module.writer import KernelBinding

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3}
_DIRECTIONS = {"forward": 0, "reverse": 1, "bidirectional": 2}


def bind_rnn(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    """The ``lstm_f32`` / ``gru_f32`` binding of a lone LSTM or GRU node, or ``Reject``."""
    op = node.op
    entry = "lstm_f32" if op == "LSTM" else "gru_f32"
    lstm = op == "LSTM"
    ins = node.inputs
    x, w, r = ins[0], ins[1], ins[2]
    bias, lens, h0 = _opt(ins, 3), _opt(ins, 4), _opt(ins, 5)
    c0 = _opt(ins, 6) if lstm else None
    peep = _opt(ins, 7) if lstm else None
    outputs = list(group.outputs)
    _require_f32(entry, [x, w, r, bias, h0, c0, peep, *outputs])
    if lens is not None and ir.numpy_dtype_of(lens) not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise Reject(entry, "sequence_lens must be int32 or int64")

    direction = ir.attr_str(node, "direction", "forward")
    if direction not in _DIRECTIONS:
        raise Reject(entry, f"direction {direction!r}")
    layout = ir.attr_int(node, "layout", 0) if opset >= 14 else 0
    if layout not in (0, 1):
        raise Reject(entry, f"layout {layout}")
    _check_activations(entry, node)
    flag = ir.attr_int(node, "input_forget" if lstm else "linear_before_reset", 0)
    if flag not in (0, 1):
        raise Reject(entry, f"{'input_forget' if lstm else 'linear_before_reset'} = {flag}")
    clip = 0.0
    if "clip" in node.attrs:
        clip = float(ir.attr_float(node, "clip", 0.0))
        if not clip > 0.0 or not np.isfinite(clip):
            raise Reject(entry, f"clip {clip} (must be finite and > 0)")

    w_arr, r_arr = ir.const_value(w), ir.const_value(r)
    if w_arr is None or r_arr is None:
        raise Reject(entry, "W and R must be constant initializers (they are pre-transposed)")
    if w_arr.ndim != 3 or r_arr.ndim != 3:
        raise Reject(entry, "W and R must be rank 3")
    num_dirs = 2 if direction == "bidirectional" else 1
    gates = _GATES[op]
    hidden = r_arr.shape[2]
    if ir.attr_int(node, "hidden_size", hidden) != hidden:
        raise Reject(entry, f"hidden_size {ir.attr_int(node, 'hidden_size')} != R's {hidden}")
    if w_arr.shape[:2] != (num_dirs, gates * hidden) or r_arr.shape[:2] != (
        num_dirs,
        gates * hidden,
    ):
        raise Reject(entry, f"W {w_arr.shape} / R {r_arr.shape} do not fit {direction}, H={hidden}")
    xs = _shape(x)
    if len(xs) != 3:
        raise Reject(entry, f"X has rank {len(xs)}")
    seq, batch = (xs[1], xs[0]) if layout else (xs[0], xs[1])
    for v in outputs:
        if v is not None:
            _shape(v)

    wt = ir.make_constant(graph, np.ascontiguousarray(w_arr.transpose(0, 2, 1), np.float32),
                          f"{w.name}_T")  # fmt: skip
    rt = ir.make_constant(graph, np.ascontiguousarray(r_arr.transpose(0, 2, 1), np.float32),
                          f"{r.name}_T")  # fmt: skip
    lens = _unless_constant(lens, lambda a: bool(np.all(a == seq)))
    h0 = _unless_constant(h0, lambda a: not np.any(a))
    c0 = _unless_constant(c0, lambda a: not np.any(a))
    inputs: list[Value | None] = [x, wt, rt, bias, lens, h0]
    if lstm:
        inputs += [c0, peep]
    while inputs[-1] is None:
        inputs.pop()
    # An omitted output before a used one (the runtime has no "absent" output slot): the kernel
    # writes it to a scratch value nobody reads.
    state = [batch, num_dirs, hidden] if layout else [num_dirs, batch, hidden]
    shapes = [[batch, seq, num_dirs, hidden] if layout else [seq, num_dirs, batch, hidden],
              state, state]  # fmt: skip
    for i, v in enumerate(outputs):
        if v is None:
            outputs[i] = ir.make_value(graph, f"{node.name}_unused{i}", np.float32, shapes[i])
    group.inputs = inputs
    group.outputs = outputs
    gh = gates * hidden
    floats = num_dirs * seq * batch * gh + num_dirs * (gh + hidden)
    floats += num_dirs * batch * (gh + 3 * hidden)
    iparams = [_DIRECTIONS[direction], layout, flag]
    return _builtin(entry, inputs, outputs, iparams, [clip], 4 * floats)


def _check_activations(entry: str, node: Node) -> None:
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in node.attrs.get("activations", []) or []]  # fmt: skip
    default = _DEFAULT_ACTS[node.op]
    if names and names != default and names != default * 2:
        raise Reject(entry, f"activations {names}: only the defaults {default} are native")


def _unless_constant(value: Value | None, redundant) -> Value | None:
    """None when ``value`` is a constant the kernel's default reproduces (``redundant(array)``)."""
    if value is None:
        return None
    array = ir.const_value(value)
    if array is not None and redundant(np.asarray(array)):
        return None
    return value
