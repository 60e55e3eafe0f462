"""Kernel binding: one fusion group -> the kernel that runs it (a ``KernelBinding``).

Native kernels (``kind: builtin``, kernels/native/params.md) are tried first; their iparams /
fparams are derived from the group's nodes here. A group no native kernel takes runs through
the reference bridge (``kernels/python_bridge.py``, ``kind: python``): its nodes' NumPy
reference kernels, encoded as a small program in the step's iparams. That fallback is refused
with ``UnsupportedOpError`` (op, node, target, every candidate's reason) when
``allow_fallback`` is off (``--no-fallback``), or when even a reference kernel is missing.

``prepack_weights`` is the graph-level part that runs before partitioning: constant GEMM
weights are stored the way the native kernel wants them (``transB = 0``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node, Value
from optimizer.kernels import python_bridge, registry
from optimizer.kernels.registry import KernelSpec, NodeInfo, Selection, UnsupportedOpError
from optimizer.lower import bind_reduce
from optimizer.lower.bind_pad import bind_pad
from optimizer.lower.partition import ATTENTION, ELEMENTWISE, EPILOGUE, LAYER_NORM, FusionGroup
from optimizer.module.writer import KernelBinding

log = logging.getLogger(__name__)

TARGET = "cpu"
_BIG = 3.4e38  # fparams must be finite: "no bound" for clip

# act codes of params.md
ACT_NONE, ACT_RELU, ACT_CLIP, ACT_SIGMOID, ACT_SILU, ACT_HARDSWISH = 0, 1, 2, 3, 4, 5
ACT_GELU, ACT_GELU_TANH, ACT_LEAKY, ACT_TANH, ACT_HARDSIGMOID = 6, 7, 8, 9, 10
UNARY_ACTS = {"Exp": 11, "Abs": 12, "Neg": 13, "Sqrt": 14, "Reciprocal": 15, "Erf": 16}
BINARY_OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5}
COORD_MODES = {"half_pixel": 0, "align_corners": 1, "asymmetric": 2, "pytorch_half_pixel": 3}
NEAREST_MODES = {"round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3}


@dataclass
class Bound:
    """The binding of one group and how it was chosen.

    Attributes:
        binding: What the module writer needs.
        fallback: True when the group runs its reference kernels through the Python bridge.
        reasons: Why no native kernel took the group (empty for native bindings).
    """

    binding: KernelBinding
    fallback: bool = False
    reasons: list[str] = field(default_factory=list)


class Reject(Exception):
    """A native kernel cannot run the group; ``kernel`` and the reason."""

    def __init__(self, kernel: str, reason: str) -> None:
        super().__init__(f"{kernel}: {reason}")
        self.kernel = kernel
        self.reason = reason


# -- graph-level pre-packing ----------------------------------------------------------------------


def prepack_weights(model: ir.Model) -> int:
    """Stores constant Gemm ``B`` operands untransposed (``transB = 0``); returns how many."""
    graph = model.graph
    count = 0
    for node in graph.nodes:
        if node.op != "Gemm" or ir.attr_int(node, "transB", 0) != 1 or len(node.inputs) < 2:
            continue
        b = node.inputs[1]
        array = ir.const_value(b)
        if array is None or array.ndim != 2:
            continue
        packed = ir.make_constant(graph, np.ascontiguousarray(array.T), f"{b.name}_packed")
        node.inputs[1] = packed
        node.attrs["transB"] = 0
        count += 1
    if count:
        ir.cleanup(graph)
    return count


# -- entry point ----------------------------------------------------------------------------------


def bind_group(
    graph: Graph, group: FusionGroup, opset: int, *, allow_fallback: bool = True
) -> Bound:
    """The kernel binding of ``group`` (native when possible, else the reference bridge).

    Raises:
        UnsupportedOpError: no native kernel, and the fallback is forbidden or impossible.
    """
    try:
        return Bound(_bind_native(graph, group, opset))
    except Reject as rejection:
        native = rejection
    # Fallback: every node needs a reference kernel.
    specs = []
    for node in group.nodes:
        info = node_info(node, opset)
        selection = registry.select(info, TARGET)
        rejected = list(selection.rejected)
        if node is group.nodes[0] or len(group.nodes) == 1:
            rejected.insert(0, (_native_spec(native.kernel, node), native.reason))
        full = Selection(info, TARGET, list(selection.supported), rejected)
        chosen = full.require(allow_reference=allow_fallback)
        spec = next((s for s in chosen if s.backend == "reference"), None)
        if spec is None:  # pragma: no cover - only reference kernels are registered in Python
            raise UnsupportedOpError(info, TARGET, rejected)
        specs.append(spec)
    return Bound(_bridge_binding(group, specs, opset), True, [str(native)])


def node_info(node: Node, opset: int) -> NodeInfo:
    """The registry's IR-free view of ``node``."""
    consts = {}
    for i, v in enumerate(node.inputs):
        array = None if ir.is_empty(v) else ir.const_value(v)
        if array is not None:
            consts[i] = array
    return NodeInfo(
        op=node.op,
        domain=node.domain or "",
        opset=opset,
        name=node.name,
        attrs=dict(node.attrs),
        input_shapes=[None if ir.is_empty(v) else ir.static_shape(v) for v in node.inputs],
        input_dtypes=[_dtype(v) for v in node.inputs],
        output_shapes=[None if ir.is_empty(v) else ir.static_shape(v) for v in node.outputs],
        output_dtypes=[_dtype(v) for v in node.outputs],
        constant_inputs=consts,
    )


# -- the reference bridge -------------------------------------------------------------------------


def _bridge_binding(group: FusionGroup, specs: list[KernelSpec], opset: int) -> KernelBinding:
    slot_of: dict[int, int] = {}
    for i, v in enumerate(group.inputs):
        if v is not None and id(v) not in slot_of:
            slot_of[id(v)] = i
    next_slot = len(group.inputs)
    nodes = []
    for node, spec in zip(group.nodes, specs):
        ins: list[int | None] = []
        for v in node.inputs:
            if ir.is_empty(v):
                ins.append(None)
            elif id(v) in slot_of:
                ins.append(slot_of[id(v)])
            else:
                raise Reject("reference bridge", f"value '{v.name}' is not an input of the group")
        outs: list[int | None] = []
        for v in node.outputs:
            if ir.is_empty(v):
                outs.append(None)
            else:
                slot_of[id(v)] = next_slot
                outs.append(next_slot)
                next_slot += 1
        attrs = {}
        for key, value in node.attrs.items():
            try:
                attrs[key] = python_bridge.encode_attr(value)
            except TypeError as err:
                raise UnsupportedOpError(
                    node_info(node, opset), TARGET, [(spec, f"attribute '{key}': {err}")],
                    hint="subgraph attributes (If / Loop / Scan) are not compiled yet",
                ) from None  # fmt: skip
        nodes.append({"op": node.op, "domain": node.domain or "", "name": node.name,
                      "kernel": spec.name, "attrs": attrs, "in": ins, "out": outs})  # fmt: skip
    outputs = []
    for v in group.outputs:
        if v is None:
            raise UnsupportedOpError(
                node_info(group.nodes[-1], opset), TARGET, [],
                hint="an omitted output between used ones is not supported in modules yet",
            )  # fmt: skip
        outputs.append(slot_of[id(v)])
    program = {"opset": opset, "nodes": nodes, "outputs": outputs}
    return KernelBinding(
        name=f"reference.{group.pattern}",
        backend="reference",
        kind="python",
        entry=python_bridge.ENTRY,
        iparams=python_bridge.encode_program(program),
    )


def _native_only(node: NodeInfo) -> Any:  # pragma: no cover - never called from Python
    raise RuntimeError("native kernels run inside the C++ runtime")


def _native_spec(kernel: str, node: Node) -> KernelSpec:
    name = kernel if kernel.startswith("native.") else f"native.{kernel}"
    return KernelSpec(name=name, op=node.op, domain=node.domain or "", backend="native",
                      builder=_native_only, targets=frozenset({TARGET}))  # fmt: skip


# -- native kernels -------------------------------------------------------------------------------


def _builtin(entry: str, inputs: list[Value | None], outputs: list[Value | None],
             iparams: list[int], fparams: list[float], workspace: int = 0) -> KernelBinding:  # fmt: skip
    return KernelBinding(
        name=f"native.{entry}",
        backend="native",
        kind="builtin",
        entry=entry,
        iparams=[int(x) for x in iparams],
        fparams=[float(x) for x in fparams],
        workspace=workspace,
        inputs=[None if v is None else v.name for v in inputs],
        outputs=[None if v is None else v.name for v in outputs],
    )


def _bind_native(graph: Graph, group: FusionGroup, opset: int) -> KernelBinding:
    if group.kind == EPILOGUE:
        return _bind_epilogue(graph, group)
    if group.kind == ELEMENTWISE:
        return _bind_eltwise_group(group)
    if group.kind == LAYER_NORM:
        return bind_reduce.bind_layer_norm_group(graph, group)
    if group.kind == ATTENTION:
        return _bind_attention(group)
    node = group.nodes[0]
    if node.domain not in ("", "ai.onnx", None):
        raise Reject("native", f"domain '{node.domain}' has no native kernels")
    binder = _SINGLE.get(node.op)
    if binder is None:
        raise Reject("native", f"no native kernel for {node.op}")
    return binder(graph, group, node, opset)


def _dtype(v: Value | None) -> str | None:
    if v is None or ir.is_empty(v):
        return None
    dt = ir.numpy_dtype_of(v)
    return None if dt is None else dt.name


def _require_f32(kernel: str, values: list[Value | None]) -> None:
    for v in values:
        if v is not None and not ir.is_empty(v) and _dtype(v) != "float32":
            raise Reject(kernel, f"'{v.name}' is {_dtype(v)}, the kernel takes float32 only")


def _shape(v: Value) -> tuple[int, ...]:
    shape = ir.static_shape(v)
    if shape is None:
        raise Reject("native", f"'{v.name}' has no static shape")
    return shape


def _opt(values: list[Value], i: int) -> Value | None:
    return values[i] if len(values) > i and not ir.is_empty(values[i]) else None


def _activation(kernel: str, name: str | None, nodes: list[Node]) -> tuple[int, float, float]:
    """(act, act_alpha, act_beta) of an epilogue activation."""
    if name is None:
        return ACT_NONE, 0.0, 0.0
    node = nodes[0]
    if name == "relu":
        return ACT_RELU, 0.0, 0.0
    if name == "sigmoid":
        return ACT_SIGMOID, 0.0, 0.0
    if name == "silu":
        return ACT_SILU, 0.0, 0.0
    if name == "hardswish":
        return ACT_HARDSWISH, 0.0, 0.0
    if name == "gelu":
        approx = ir.attr_str(node, "approximate", "none")
        return (ACT_GELU_TANH if approx == "tanh" else ACT_GELU), 0.0, 0.0
    if name == "tanh":
        return ACT_TANH, 0.0, 0.0
    if name == "leakyrelu":
        return ACT_LEAKY, ir.attr_float(node, "alpha", 0.01), 0.0
    if name == "hardsigmoid":
        return ACT_HARDSIGMOID, ir.attr_float(node, "alpha", 0.2), ir.attr_float(node, "beta", 0.5)
    if name == "clip":
        return (ACT_CLIP, *_clip_bounds(kernel, node))
    raise Reject(kernel, f"activation {name} has no act code")


def _clip_bounds(kernel: str, node: Node) -> tuple[float, float]:
    lo, hi = -_BIG, _BIG
    if "min" in node.attrs or "max" in node.attrs:  # opset < 11
        lo = ir.attr_float(node, "min", -_BIG)
        hi = ir.attr_float(node, "max", _BIG)
    bounds = []
    for i in (1, 2):
        v = _opt(node.inputs, i)
        if v is None:
            bounds.append(None)
            continue
        array = ir.const_value(v)
        if array is None or array.size != 1:
            raise Reject(kernel, "Clip bounds must be constant scalars")
        bounds.append(float(array.reshape(-1)[0]))
    lo = bounds[0] if bounds[0] is not None else lo
    hi = bounds[1] if bounds[1] is not None else hi
    return max(lo, -_BIG), min(hi, _BIG)


def _unary_act(kernel: str, node: Node) -> tuple[int, float, float]:
    """(act, alpha, beta) of a single unary op, or Reject."""
    op = node.op
    table = {"Relu": "relu", "Sigmoid": "sigmoid", "HardSwish": "hardswish", "Gelu": "gelu",
             "LeakyRelu": "leakyrelu", "HardSigmoid": "hardsigmoid", "Clip": "clip"}  # fmt: skip
    if op in table:
        return _activation(kernel, table[op], [node])
    if op == "Tanh":
        return ACT_TANH, 0.0, 0.0
    if op == "Elu":
        return 17, ir.attr_float(node, "alpha", 1.0), 0.0
    if op in UNARY_ACTS:
        return UNARY_ACTS[op], 0.0, 0.0
    raise Reject(kernel, f"{op} is not a unary_f32 op")


def _const_as(graph: Graph, group: FusionGroup, value: Value, array: np.ndarray) -> Value:
    """A constant holding ``array`` replacing ``value`` among the group's inputs."""
    if tuple(array.shape) == tuple(_shape(value)):
        return value
    new = ir.make_constant(
        graph, np.ascontiguousarray(array, dtype=np.float32), f"{value.name}_flat"
    )
    group.inputs = [new if v is value else v for v in group.inputs]
    return new


def _conv_pads(
    node: Node, x: tuple[int, ...], k: list[int], s: list[int], d: list[int]
) -> list[int]:
    """[pad_t, pad_l, pad_b, pad_r] with auto_pad resolved."""
    auto = ir.attr_str(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", "", None):
        pads = ir.attr_ints(node, "pads", [0, 0, 0, 0])
        return [pads[0], pads[1], pads[2], pads[3]]
    if auto == "VALID":
        return [0, 0, 0, 0]
    begin, end = [], []
    for i in range(2):
        size = x[2 + i]
        out = -(-size // s[i])
        total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return [begin[0], begin[1], end[0], end[1]]


def _bind_conv(graph: Graph, group: FusionGroup, node: Node, bias: Value | None,
               residual: Value | None, act: tuple[int, float, float]) -> KernelBinding:  # fmt: skip
    x, w = node.inputs[0], node.inputs[1]
    out = group.outputs[0]
    _require_f32("conv2d_f32", [x, w, bias, residual, out])
    xs, ws = _shape(x), _shape(w)
    if len(xs) != 4 or len(ws) != 4:
        raise Reject("conv2d_f32", f"only 2-D convolutions (input rank {len(xs)})")
    if ir.const_value(w) is None:
        raise Reject("conv2d_f32", "weights must be constant")
    k = list(ws[2:])
    if ir.attr_ints(node, "kernel_shape", k) != k:
        raise Reject("conv2d_f32", "kernel_shape disagrees with W")
    s = ir.attr_ints(node, "strides", [1, 1])
    d = ir.attr_ints(node, "dilations", [1, 1])
    group_n = ir.attr_int(node, "group", 1)
    pads = _conv_pads(node, xs, k, s, d)
    co = ws[0]
    if bias is not None:
        array = ir.const_value(bias)
        if array is None or array.size not in (1, co):
            if array is None and len(_shape(bias)) == 1:
                pass  # a computed [Co] bias works as is
            else:
                raise Reject("conv2d_f32", "bias must be a constant of Co elements")
        else:
            bias = _const_as(graph, group, bias, np.broadcast_to(array.reshape(-1), (co,)))
    iparams = [s[0], s[1], *pads, d[0], d[1], group_n, act[0], 0]
    if group_n == xs[1] and ws[1] == 1 and group_n > 1:
        return _builtin("depthwise_conv2d_f32", [x, w, bias, residual], [out], iparams,
                        [act[1], act[2]])  # fmt: skip
    packed = ir.make_constant(graph, pack_conv_weights(ir.const_value(w), group_n), f"{w.name}_packed")
    group.inputs = [packed if v is w else v for v in group.inputs]
    return _builtin("conv2d_packed_f32", [x, packed, bias, residual], [out],
                    [*iparams, co, k[0], k[1]], [act[1], act[2]])  # fmt: skip


def pack_conv_weights(w: np.ndarray, group: int) -> np.ndarray:
    """``conv2d_packed_f32``'s weight layout (params.md): 32-wide output-channel panels.

    ``Wp[g, q, k, j] = W[g*Mg + q*32 + j, k]`` over the flattened ``k = (c, ky, kx)``, zero
    where ``q*32 + j >= Mg``.
    """
    co = w.shape[0]
    mg, kg = co // group, int(np.prod(w.shape[1:]))
    nq = -(-mg // 32)
    padded = np.zeros((group, nq * 32, kg), dtype=np.float32)
    padded[:, :mg] = w.reshape(group, mg, kg)
    return np.ascontiguousarray(padded.reshape(group, nq, 32, kg).transpose(0, 1, 3, 2))


def _bind_gemm(graph: Graph, group: FusionGroup, node: Node, bias: Value | None,
               residual: Value | None, act: tuple[int, float, float]) -> KernelBinding:  # fmt: skip
    a, b = node.inputs[0], node.inputs[1]
    out = group.outputs[0]
    _require_f32("gemm_f32", [a, b, bias, residual, out])
    ash, bsh, osh = _shape(a), _shape(b), _shape(out)
    if len(ash) < 2 or len(bsh) < 2:
        raise Reject("gemm_f32", "operands of rank < 2 (vector MatMul)")
    if node.op == "Gemm":
        ta, tb = ir.attr_int(node, "transA", 0), ir.attr_int(node, "transB", 0)
        alpha, beta = ir.attr_float(node, "alpha", 1.0), ir.attr_float(node, "beta", 1.0)
        own = _opt(node.inputs, 2)
        if own is not None:
            bias = own
        else:
            beta = 1.0
    else:
        ta = tb = 0
        alpha, beta = 1.0, 1.0
    if bias is not None:
        m, n = osh[-2], osh[-1]
        bshape = _shape(bias)
        ok = len(bshape) <= 2 and (
            len(bshape) < 2 or bshape[0] in (1, m)) and (not bshape or bshape[-1] in (1, n))  # fmt: skip
        if not ok:
            array = ir.const_value(bias)
            if array is None or array.size not in (1, n):
                raise Reject("gemm_f32", f"bias {list(bshape)} is not broadcastable to [M, N]")
            bias = _const_as(graph, group, bias, array.reshape(-1))
    iparams = [ta, tb, act[0], 0]
    return _builtin("gemm_f32", [a, b, bias, residual], [out], iparams,
                    [alpha, beta, act[1], act[2]])  # fmt: skip


def _bind_epilogue(graph: Graph, group: FusionGroup) -> KernelBinding:
    epi = group.epilogue
    assert epi is not None
    anchor = epi.anchor
    kernel = "conv2d_f32" if anchor.op == "Conv" else "gemm_f32"
    act = _activation(kernel, epi.activation, epi.activation_nodes)
    if anchor.op == "Conv":
        bias = _opt(anchor.inputs, 2) or epi.bias
        return _bind_conv(graph, group, anchor, bias, epi.residual, act)
    return _bind_gemm(graph, group, anchor, epi.bias, epi.residual, act)


def _bind_attention(group: FusionGroup) -> KernelBinding:
    """``attention_f32`` in its strided form (kernels/triton/attention.py); no CPU kernel."""
    found = group.attention
    assert found is not None
    inputs: list[Value | None] = list(found.inputs())
    _require_f32("attention_f32", [*inputs, found.output])
    return _builtin("attention_f32", inputs, [found.output], found.iparams(), [found.scale])


def _bind_eltwise_group(group: FusionGroup) -> KernelBinding:
    nodes = group.nodes
    out = group.outputs[0]
    if len(nodes) == 2 and nodes[0].op in BINARY_OPS and len(nodes[0].inputs) == 2:
        first, second = nodes
        act = (-1, 0.0, 0.0)
        if second.inputs and second.inputs[0] is first.outputs[0]:
            try:
                act = _unary_act("binary_f32", second)
            except Reject:
                pass  # a second binary op: the program below takes it
            if act[0] in range(0, 11) or act[0] == 17:
                a, b = first.inputs
                _require_f32("binary_f32", [a, b, out])
                return _builtin("binary_f32", [a, b], [out], [BINARY_OPS[first.op], act[0]],
                                [act[1], act[2]])  # fmt: skip
    if len(nodes) == 2 and {n.op for n in nodes} == {"Sigmoid", "Mul"}:
        sig = next(n for n in nodes if n.op == "Sigmoid")
        mul = next(n for n in nodes if n.op == "Mul")
        x = sig.inputs[0]
        if {id(v) for v in mul.inputs} == {id(x), id(sig.outputs[0])}:
            _require_f32("unary_f32", [x, out])
            return _builtin("unary_f32", [x], [out], [ACT_SILU], [0.0, 0.0])
    if len(nodes) == 2 and {n.op for n in nodes} == {"HardSigmoid", "Mul"}:
        hs = next(n for n in nodes if n.op == "HardSigmoid")
        mul = next(n for n in nodes if n.op == "Mul")
        x = hs.inputs[0]
        alpha, beta = ir.attr_float(hs, "alpha", 0.2), ir.attr_float(hs, "beta", 0.5)
        if (
            {id(v) for v in mul.inputs} == {id(x), id(hs.outputs[0])}
            and abs(alpha - 1 / 6) < 1e-6
            and abs(beta - 0.5) < 1e-6
        ):
            _require_f32("unary_f32", [x, out])
            return _builtin("unary_f32", [x], [out], [ACT_HARDSWISH], [0.0, 0.0])
    return _bind_program(group)


# -- eltwise_program_f32: an elementwise DAG as a register program (params.md) ------------------

PROG_BINARY = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Pow": 6}
PROG_UNARY = {"Neg": 8, "Abs": 9, "Exp": 10, "Log": 11, "Sqrt": 12, "Reciprocal": 13, "Erf": 14,
              "Tanh": 15, "Sigmoid": 16, "Relu": 17}  # fmt: skip
PROG_COPY, PROG_CLIP = 7, 18
PROG_VARIADIC = {"Max": 4, "Min": 5, "Sum": 0}
# input dtypes the program kernel converts to float32 on load (read by a Cast to float32 only)
PROG_CONVERTIBLE = {"float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                    "int64", "uint64", "bool"}  # fmt: skip
_PROG_MAX_REGS = 64
_PROG_MAX_INPUTS = 64
_KIND_INPUT, _KIND_IMM = 1 << 24, 2 << 24


def _bind_program(group: FusionGroup) -> KernelBinding:
    """An elementwise group as an ``eltwise_program_f32`` program, or Reject."""
    entry = "eltwise_program_f32"
    nodes = group.nodes
    out = group.outputs[0]
    if len(group.outputs) != 1 or out is None or out is not nodes[-1].outputs[0]:
        raise Reject(entry, "one output, the last node's, expected")
    out_shape = _shape(out)
    if len(out_shape) > 8:
        raise Reject(entry, "rank > 8")
    for node in nodes:
        if node.domain not in ("", "ai.onnx", None):
            raise Reject(entry, f"domain '{node.domain}'")
        if len(node.outputs) != 1 or _dtype(node.outputs[0]) != "float32":
            raise Reject(entry, f"{node.op} '{node.name}' does not produce one float32 output")
        if _shape(node.outputs[0]) != out_shape:
            raise Reject(entry, f"'{node.outputs[0].name}' does not have the output's shape")
    inside = {id(n.outputs[0]) for n in nodes}
    converted: set[int] = set()  # inputs of another dtype, converted by the kernel on load
    fparams: list[float] = []
    inputs: list[Value] = []
    operand_of: dict[int, int] = {}

    def immediate(x: float) -> int:
        fparams.append(float(x))
        return _KIND_IMM + len(fparams) - 1

    def external(v: Value, any_dtype: bool = False, cast: bool = False) -> int:
        """The operand of an external value: a finite scalar constant becomes an immediate.

        ``cast``: read by a Cast to float32, so any dtype the kernel converts on load will do.
        """
        if id(v) in operand_of:
            if cast or id(v) not in converted:
                return operand_of[id(v)]
            _require_f32(entry, [v])
        array = ir.const_value(v)
        if (
            array is not None
            and array.size == 1
            and (any_dtype or _dtype(v) == "float32")
            and np.isfinite(array).all()
        ):
            code = immediate(float(np.asarray(array, dtype=np.float64).reshape(-1)[0]))
        else:
            if cast and _dtype(v) in PROG_CONVERTIBLE:
                converted.add(id(v))
            else:
                _require_f32(entry, [v])
            shape = _shape(v)
            if len(shape) > len(out_shape) or any(
                d != 1 and d != o for d, o in zip(reversed(shape), reversed(out_shape))
            ):
                raise Reject(entry, f"'{v.name}' {list(shape)} does not broadcast to the output")
            inputs.append(v)
            code = _KIND_INPUT + len(inputs) - 1
        operand_of[id(v)] = code
        return code

    last_use: dict[int, int] = {}
    for k, node in enumerate(nodes):
        for v in node.inputs:
            if not ir.is_empty(v):
                last_use[id(v)] = k
    free = list(range(_PROG_MAX_REGS))
    used = 0
    code: list[int] = []
    for k, node in enumerate(nodes):
        op = node.op
        ins = [v for v in node.inputs if not ir.is_empty(v)]

        def src(v: Value, any_dtype: bool = False, cast: bool = False) -> int:
            if id(v) in inside:
                if id(v) not in operand_of:
                    raise Reject(entry, f"'{v.name}' is read before it is computed")
                return operand_of[id(v)]
            return external(v, any_dtype, cast)

        instrs: list[tuple[int, int, int]] = []  # (op, a, b); dst filled in below
        if op in PROG_BINARY and len(ins) == 2 and len(node.inputs) == 2:
            a = src(ins[0])
            b = src(ins[1], any_dtype=op == "Pow")
            if op == "Pow" and b >= _KIND_IMM and fparams[b - _KIND_IMM] == 2.0:
                instrs.append((2, a, a))
            elif op == "Pow" and b >= _KIND_IMM and fparams[b - _KIND_IMM] == 1.0:
                instrs.append((PROG_COPY, a, 0))
            else:
                instrs.append((PROG_BINARY[op], a, b))
        elif op in PROG_VARIADIC and len(ins) == len(node.inputs) >= 1:
            srcs = [src(v) for v in ins]
            if len(srcs) == 1:
                instrs.append((PROG_COPY, srcs[0], 0))
            for i, b in enumerate(srcs[1:]):
                instrs.append((PROG_VARIADIC[op], srcs[0] if i == 0 else -1, b))
        elif op in PROG_UNARY and len(ins) == 1:
            instrs.append((PROG_UNARY[op], src(ins[0]), 0))
        elif op == "Clip" and ins and not ir.is_empty(node.inputs[0]):
            lo, hi = _clip_bounds(entry, node)
            a = src(node.inputs[0])
            j = immediate(lo)
            immediate(hi)
            instrs.append((PROG_CLIP, a, j))
        elif op == "Cast" and len(ins) == 1:
            if ir.attr_int(node, "to", 0) != 1:
                raise Reject(entry, f"Cast '{node.name}': only to float32")
            if _dtype(ins[0]) not in PROG_CONVERTIBLE:
                raise Reject(entry, f"Cast '{node.name}' from {_dtype(ins[0])}")
            instrs.append((PROG_COPY, src(ins[0], any_dtype=True, cast=True), 0))
        else:
            raise Reject(entry, f"{op} '{node.name}' has no program op")

        def release(ins: list[Value] = ins, k: int = k) -> None:
            for v in ins:
                if id(v) in inside and last_use.get(id(v)) == k:
                    r = operand_of[id(v)]
                    if r < _KIND_INPUT and r not in free:
                        free.append(r)
                        free.sort()

        if len(instrs) == 1:
            release()
        if not free:
            raise Reject(entry, f"more than {_PROG_MAX_REGS} live values")
        dst = free.pop(0)
        if len(instrs) > 1:
            release()
        used = max(used, dst + 1)
        for o, a, b in instrs:
            code += [o, dst, dst if a == -1 else a, b]
        operand_of[id(node.outputs[0])] = dst
    if len(inputs) > _PROG_MAX_INPUTS:
        raise Reject(entry, f"more than {_PROG_MAX_INPUTS} inputs")
    if not inputs:
        raise Reject(entry, "no tensor input (a constant group)")
    result = operand_of[id(out)]
    iparams = [used, len(code) // 4, result, *code]
    return _builtin(entry, list(inputs), [out], iparams, fparams)


def _bind_single_program(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    """A lone elementwise op with no kernel of its own (Pow, Log, Sum) as a one-op program."""
    return _bind_program(group)


def _bind_cast(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    """Cast to float32 (from float32 or a dtype the program kernel converts) as a one-op
    program; a Cast to the input's own dtype a ``copy``; any other Cast is rejected."""
    to = ir.attr_int(node, "to", 0)
    if to == 1:
        return _bind_program(group)
    x, out = node.inputs[0], group.outputs[0]
    if out is not None and _dtype(x) == _dtype(out):
        return _bind_copy(graph, group, node, opset)
    raise Reject("eltwise_program_f32", f"Cast to {_dtype(out)}: only casts to float32 are native")


def _bind_anchor_single(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    none = (ACT_NONE, 0.0, 0.0)
    if node.op == "Conv":
        return _bind_conv(graph, group, node, _opt(node.inputs, 2), None, none)
    return _bind_gemm(graph, group, node, None, None, none)


def _bind_conv_transpose(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    entry = "conv_transpose2d_f32"
    x, w, out = node.inputs[0], node.inputs[1], group.outputs[0]
    bias = _opt(node.inputs, 2)
    _require_f32(entry, [x, w, bias, out])
    xs, ws, ys = _shape(x), _shape(w), _shape(out)
    if len(xs) != 4 or len(ws) != 4:
        raise Reject(entry, f"only 2-D transposed convolutions (input rank {len(xs)})")
    if (
        ir.attr_str(node, "auto_pad", "NOTSET") not in ("NOTSET", "")
        or "output_shape" in node.attrs
    ):
        raise Reject(entry, "auto_pad / output_shape")
    s = ir.attr_ints(node, "strides", [1, 1])
    d = ir.attr_ints(node, "dilations", [1, 1])
    pads = ir.attr_ints(node, "pads", [0, 0, 0, 0])
    out_pad = ir.attr_ints(node, "output_padding", [0, 0])
    group_n = ir.attr_int(node, "group", 1)
    for i in range(2):
        size = (
            (xs[2 + i] - 1) * s[i] - pads[i] - pads[i + 2] + (ws[2 + i] - 1) * d[i] + 1 + out_pad[i]
        )
        if size != ys[2 + i]:
            raise Reject(entry, f"output size {ys[2 + i]} != {size} from the attributes")
    if bias is not None and len(_shape(bias)) != 1:
        raise Reject(entry, "bias must be [Co]")
    workspace = ws[1] * ws[2] * ws[3] * xs[2] * xs[3] * 4
    iparams = [s[0], s[1], pads[0], pads[1], pads[2], pads[3], d[0], d[1], group_n,
               out_pad[0], out_pad[1], ACT_NONE, 0]  # fmt: skip
    return _builtin(entry, [x, w, bias, None], [out], iparams, [0.0, 0.0], workspace)


def _bind_pool(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    entry = "maxpool2d_f32" if node.op == "MaxPool" else "avgpool2d_f32"
    x, out = node.inputs[0], group.outputs[0]
    _require_f32(entry, [x, out])
    if len(group.outputs) != 1:
        raise Reject(entry, "MaxPool Indices output")
    xs = _shape(x)
    if len(xs) != 4:
        raise Reject(entry, f"only 2-D pooling (input rank {len(xs)})")
    k = ir.attr_ints(node, "kernel_shape")
    s = ir.attr_ints(node, "strides", [1, 1])
    d = ir.attr_ints(node, "dilations", [1, 1])
    if k is None or len(k) != 2:
        raise Reject(entry, "kernel_shape must have 2 entries")
    pads = _conv_pads(node, xs, k, s, d)
    ceil = ir.attr_int(node, "ceil_mode", 0)
    iparams = [k[0], k[1], s[0], s[1], *pads, d[0], d[1], ceil]
    if node.op == "AveragePool":
        iparams.append(ir.attr_int(node, "count_include_pad", 0))
    return _builtin(entry, [x], [out], iparams, [])


def _bind_global_avg(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    _require_f32("global_avgpool_f32", [x, out])
    if len(_shape(x)) < 3:
        raise Reject("global_avgpool_f32", "input rank < 3")
    return _builtin("global_avgpool_f32", [x], [out], [], [])


def _bind_softmax(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    _require_f32("softmax_f32", [x, out])
    rank = len(_shape(x))
    axis = ir.attr_int(node, "axis", -1 if opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    if opset < 13 and axis != rank - 1:
        raise Reject("softmax_f32", "opset < 13 coerces to 2-D: only the last axis maps")
    return _builtin("softmax_f32", [x], [out], [axis, int(node.op == "LogSoftmax")], [])


def _bind_layer_norm(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x = node.inputs[0]
    _require_f32("layer_norm_f32", [*node.inputs, *group.outputs])
    if ir.attr_int(node, "stash_type", 1) != 1:
        raise Reject("layer_norm_f32", "stash_type other than float32")
    if any(v is None for v in group.outputs):
        raise Reject("layer_norm_f32", "an omitted output between used ones")
    rank = len(_shape(x))
    axis = ir.attr_int(node, "axis", -1)
    axis = axis + rank if axis < 0 else axis
    count = math.prod(_shape(x)[axis:])
    for v in node.inputs[1:3]:
        if not ir.is_empty(v) and math.prod(_shape(v)) != count:
            raise Reject("layer_norm_f32", "scale / bias must have prod(X.shape[axis:]) elements")
    inputs = [x, _opt(node.inputs, 1), _opt(node.inputs, 2)]
    eps = ir.attr_float(node, "epsilon", 1e-5)
    return _builtin("layer_norm_f32", inputs, list(group.outputs), [axis], [eps])


def _bind_resize(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    mode = ir.attr_str(node, "mode", "nearest")
    entry = "resize_nearest_f32" if mode == "nearest" else "resize_bilinear_f32"
    _require_f32(entry, [x, out])
    if opset < 11:
        raise Reject(entry, "Resize before opset 11")
    if mode not in ("nearest", "linear"):
        raise Reject(entry, f"mode {mode}")
    xs, ys = _shape(x), _shape(out)
    if len(xs) != 4 or xs[:2] != ys[:2]:
        raise Reject(entry, "only 4-D inputs resized along H and W")
    for attr, default in (("antialias", 0), ("exclude_outside", 0)):
        if ir.attr_int(node, attr, default) != default:
            raise Reject(entry, f"{attr} != {default}")
    if "axes" in node.attrs:
        raise Reject(entry, "the axes attribute")
    if ir.attr_str(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Reject(entry, "keep_aspect_ratio_policy other than stretch")
    coord = ir.attr_str(node, "coordinate_transformation_mode", "half_pixel")
    if coord not in COORD_MODES:
        raise Reject(entry, f"coordinate_transformation_mode {coord}")
    scale_h = scale_w = 0.0
    scales_v, sizes_v = _opt(node.inputs, 2), _opt(node.inputs, 3)
    if sizes_v is None and scales_v is not None:
        scales = ir.const_value(scales_v)
        if scales is None or scales.size != 4:
            raise Reject(entry, "scales must be a constant of 4 entries")
        if scales[0] != 1 or scales[1] != 1:
            raise Reject(entry, "only H and W may be scaled")
        scale_h, scale_w = float(scales[2]), float(scales[3])
    iparams = [COORD_MODES[coord]]
    if mode == "nearest":
        nearest = ir.attr_str(node, "nearest_mode", "round_prefer_floor")
        if nearest not in NEAREST_MODES:
            raise Reject(entry, f"nearest_mode {nearest}")
        iparams.append(NEAREST_MODES[nearest])
    return _builtin(entry, [x], [out], iparams, [scale_h, scale_w])


def _bind_binary(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    if len(node.inputs) != 2:
        raise Reject("binary_f32", f"{node.op} with {len(node.inputs)} inputs")
    a, b = node.inputs
    out = group.outputs[0]
    _require_f32("binary_f32", [a, b, out])
    if len(_shape(out)) > 8:
        raise Reject("binary_f32", "rank > 8")
    return _builtin("binary_f32", [a, b], [out], [BINARY_OPS[node.op], ACT_NONE], [0.0, 0.0])


def _bind_unary(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    _require_f32("unary_f32", [x, out])
    act = _unary_act("unary_f32", node)
    return _builtin("unary_f32", [x], [out], [act[0]], [act[1], act[2]])


# -- data movement (any fixed-size dtype) ---------------------------------------------------------

_MOVABLE = {"float32", "float64", "float16", "int8", "uint8", "int16", "uint16", "int32",
            "uint32", "int64", "uint64", "bool"}  # fmt: skip


def _require_movable(kernel: str, values: list[Value | None]) -> str:
    """The common dtype of ``values`` (a fixed-size one the movement kernels take), or Reject."""
    dtypes = {_dtype(v) for v in values if v is not None and not ir.is_empty(v)}
    if len(dtypes) != 1 or None in dtypes or not dtypes <= _MOVABLE:
        raise Reject(kernel, f"dtypes {sorted(map(str, dtypes))}: one fixed-size dtype needed")
    return dtypes.pop()


def _bind_copy(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    if len(group.outputs) != 1 or out is None:
        raise Reject("copy", "one output expected")
    _require_movable("copy", [x, out])
    if math.prod(_shape(x)) != math.prod(_shape(out)):
        raise Reject("copy", "element counts differ")
    return _builtin("copy", [x], [out], [], [])


def _bind_transpose(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    _require_movable("transpose", [x, out])
    rank = len(_shape(x))
    if not 1 <= rank <= 8:
        raise Reject("transpose", f"rank {rank}")
    perm = ir.attr_ints(node, "perm", list(range(rank - 1, -1, -1)))
    perm = [p + rank if p < 0 else p for p in perm]
    if sorted(perm) != list(range(rank)):
        raise Reject("transpose", f"perm {perm} is not a permutation")
    return _builtin("transpose", [x], [out], perm, [])


def _bind_concat(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    out = group.outputs[0]
    if any(ir.is_empty(v) for v in node.inputs) or not node.inputs:
        raise Reject("concat", "an omitted input")
    _require_movable("concat", [*node.inputs, out])
    rank = len(_shape(out))
    axis = ir.attr_int(node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Reject("concat", f"axis {axis} out of range")
    return _builtin("concat", list(node.inputs), [out], [axis], [])


def _bind_split(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x = node.inputs[0]
    outs = list(group.outputs)
    if len(outs) != len(node.outputs) or any(
        v is None or v is not w for v, w in zip(outs, node.outputs)
    ):
        raise Reject("split", "every output of the Split must be used")
    _require_movable("split", [x, *outs])
    rank = len(_shape(x))
    axis = ir.attr_int(node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Reject("split", f"axis {axis} out of range")
    if sum(_shape(v)[axis] for v in outs) != _shape(x)[axis]:
        raise Reject("split", "output sizes do not sum to the input's")
    return _builtin("split", [x], outs, [axis], [])


def _bind_gather(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    data, indices, out = node.inputs[0], node.inputs[1], group.outputs[0]
    _require_movable("gather", [data, out])
    if _dtype(indices) not in ("int64", "int32"):
        raise Reject("gather", f"indices are {_dtype(indices)}")
    rank = len(_shape(data))
    axis = ir.attr_int(node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Reject("gather", f"axis {axis} out of range")
    _shape(indices)
    return _builtin("gather", [data, indices], [out], [axis], [])


def _slice_params(node: Node, opset: int, shape: tuple[int, ...]) -> list[int] | None:
    """[starts; ends; steps] over every axis, normalized, or None if not static."""
    rank = len(shape)
    if opset < 10:
        starts = ir.attr_ints(node, "starts")
        ends = ir.attr_ints(node, "ends")
        axes = ir.attr_ints(node, "axes", list(range(len(starts or []))))
        steps = [1] * len(starts or [])
    else:
        arrays = []
        for i in range(1, 5):
            v = _opt(node.inputs, i)
            if v is None:
                arrays.append(None)
                continue
            array = ir.const_value(v)
            if array is None:
                return None
            arrays.append([int(a) for a in np.asarray(array).reshape(-1)])
        starts, ends, axes, steps = arrays
        if axes is None and starts is not None:
            axes = list(range(len(starts)))
        if steps is None and starts is not None:
            steps = [1] * len(starts)
    if starts is None or ends is None or axes is None or steps is None:
        return None
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    st, en, sp = [0] * rank, list(shape), [1] * rank
    for s, e, a, k in zip(starts, ends, axes, steps):
        a = a + rank if a < 0 else a
        if not 0 <= a < rank or k == 0:
            return None
        dim = shape[a]
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if k > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        else:
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
        st[a], en[a], sp[a] = s, e, k
    return [*st, *en, *sp]


def _bind_slice(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    x, out = node.inputs[0], group.outputs[0]
    _require_movable("slice", [x, out])
    xs, ys = _shape(x), _shape(out)
    if not xs or len(xs) != len(ys):
        raise Reject("slice", "rank 0 or a rank change")
    params = _slice_params(node, opset, xs)
    if params is None:
        raise Reject("slice", "starts / ends / axes / steps must be constant")
    rank = len(xs)
    for d in range(rank):
        s, e, k = params[d], params[rank + d], params[2 * rank + d]
        count = max(0, -(-(e - s) // k)) if k > 0 else max(0, -(-(s - e) // -k))
        if count != ys[d]:
            raise Reject("slice", f"axis {d}: {count} entries, the output has {ys[d]}")
    return _builtin("slice", [x], [out], params, [])


def _bind_rnn(graph: Graph, group: FusionGroup, node: Node, opset: int) -> KernelBinding:
    from optimizer.lower.bind_rnn import bind_rnn  # imports this module's helpers

    return bind_rnn(graph, group, node, opset)


_SINGLE = {
    "LSTM": _bind_rnn,
    "GRU": _bind_rnn,
    "Conv": _bind_anchor_single,
    "Gemm": _bind_anchor_single,
    "MatMul": _bind_anchor_single,
    "ConvTranspose": _bind_conv_transpose,
    "MaxPool": _bind_pool,
    "AveragePool": _bind_pool,
    "GlobalAveragePool": _bind_global_avg,
    "Softmax": _bind_softmax,
    "LogSoftmax": _bind_softmax,
    "LayerNormalization": _bind_layer_norm,
    "Resize": _bind_resize,
    **{op: _bind_copy for op in ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"]},
    "Transpose": _bind_transpose,
    "Concat": _bind_concat,
    "Split": _bind_split,
    "Slice": _bind_slice,
    "Gather": _bind_gather,
    "Pad": bind_pad,
    **{op: _bind_binary for op in BINARY_OPS},
    **{op: _bind_single_program for op in ["Pow", "Log", "Sum"]},
    "Cast": _bind_cast,
    **bind_reduce.SINGLE,
    **{op: _bind_unary for op in ["Relu", "Sigmoid", "HardSwish", "Gelu", "LeakyRelu",
                                  "HardSigmoid", "Clip", "Tanh", "Elu", *UNARY_ACTS]},
}  # fmt: skip
