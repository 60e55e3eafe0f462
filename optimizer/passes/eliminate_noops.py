"""Removal of nodes that compute their input unchanged (Identity, same-type Cast, x*1, ...)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.base import PassContext, PassResult, result
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, const, op, var

log = logging.getLogger(__name__)


# -- helpers -----------------------------------------------------------------------------------


def _defined_here(graph: Graph, value: Value) -> bool:
    """True when a node of ``graph`` itself (not an enclosing graph) computes ``value``."""
    src = ir.producer(value)
    return src is not None and any(n is src for n in graph.nodes)


def needs_interface_identity(graph: Graph, out: Value, src: Value) -> bool:
    """Whether forwarding ``out`` to ``src`` needs an Identity to keep an interface name.

    That is the case when ``out`` is a graph output and ``src`` cannot simply take its name
    over: a constant, a graph input or output, or a value of an enclosing graph (renaming
    that one would rename a value outside this subgraph).
    """
    if not ir.is_graph_output(graph, out):
        return False
    return (
        ir.is_constant(src)
        or ir.is_graph_input(graph, src)
        or ir.is_graph_output(graph, src)
        or not _defined_here(graph, src)
    )


def forward_output(graph: Graph, node: Node, out: Value, src: Value) -> None:
    """Makes every reader of ``out`` (a ``node`` output equal to ``src``) read ``src``.

    A graph output keeps its name: either ``src`` takes it over, or (see
    :func:`needs_interface_identity`) an Identity from ``src`` computes it.
    """
    if not needs_interface_identity(graph, out, src):
        ir.replace_all_uses(graph, out, src)
        return
    for user in list(out.outputs):
        for i, value in enumerate(user.inputs):
            if value is out:
                user.inputs[i] = src
    log.debug("%s '%s': an Identity keeps the interface name '%s'", node.op, node.name, out.name)
    index = next(i for i, o in enumerate(node.outputs) if o is out)
    node.outputs[index] = ir.make_value(graph, out.name + "__unused", out.dtype, out.shape)
    ir.add_node(graph, "Identity", [src], [out], name=f"{out.name}_keep_name")


def _is_used(graph: Graph, value: Value) -> bool:
    return bool(value.outputs) or ir.is_graph_output(graph, value)


def _same_dtype(a: Value, b: Value) -> bool:
    da, db = ir.numpy_dtype_of(a), ir.numpy_dtype_of(b)
    return da is not None and da == db


def _const_ints(value: Value | None) -> list[int] | None:
    array = ir.const_value(value)
    return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]


def _shape_unchanged(x: Value, out: Value) -> bool:
    """Both shapes fully static and equal."""
    sx, so = ir.static_shape(x), ir.static_shape(out)
    return sx is not None and sx == so


def reshape_is_noop(shape: Sequence | None, target: Sequence[int], allowzero: bool) -> bool:
    """Whether ``Reshape(x, target)`` returns ``x`` unchanged for an ``x`` of ``shape``.

    Symbolic dimensions are fine where the target copies them (``0``) or where ``-1`` can
    only resolve to them (every other dimension a known positive size).
    """
    if shape is None or len(shape) != len(target):
        return False
    known = [isinstance(d, (int, np.integer)) and d >= 0 for d in shape]
    for i, (dim, want) in enumerate(zip(shape, target, strict=True)):
        if want == 0 and not allowzero:
            continue
        if want == -1:
            others = [shape[j] for j in range(len(shape)) if j != i]
            if target.count(-1) != 1 or not all(
                isinstance(d, (int, np.integer)) and d > 0 for d in others
            ):
                return False
            continue
        if not known[i] or int(dim) != want:
            return False
    return True


# -- checks, one per op ------------------------------------------------------------------------


def _interface_guard(graph: Graph, m: Match) -> Match:
    """Common to all rules: the outputs other than the first must be unused."""
    node = m["root"]
    for extra in node.outputs[1:]:
        if not ir.is_empty(extra) and _is_used(graph, extra):
            return Match.fail(f"output '{extra.name}' of {node.op} is used", node)
    return OK


def _check_identity(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if needs_interface_identity(graph, node.outputs[0], m["x"]):
        return Match.fail("Identity keeps an interface name", node)
    return OK


def _check_dropout(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if model.opset < 7 and not ir.attr_int(node, "is_test", 0):
        return Match.fail("Dropout in training mode (is_test=0)", node)
    mode = m.values.get("training_mode")
    if mode is not None:
        array = ir.const_value(mode)
        if array is None:
            return Match.fail("training_mode is not a constant", node)
        if np.asarray(array).reshape(-1).any():
            return Match.fail("Dropout in training mode", node)
    return _interface_guard(graph, m)


def _check_cast(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if not _same_dtype(m["x"], node.outputs[0]):
        return Match.fail("Cast changes the dtype (or a dtype is unknown)", node)
    return OK


def _check_reshape(model: Model, graph: Graph, m: Match) -> Match:
    node, x = m["root"], m["x"]
    if _shape_unchanged(x, node.outputs[0]):
        return OK
    target = _const_ints(m["shape"])
    if target is None:
        return Match.fail("target shape is not a constant", node)
    if not reshape_is_noop(x.shape, target, bool(ir.attr_int(node, "allowzero", 0))):
        return Match.fail(f"target {target} differs from input shape {x.shape}", node)
    return OK


def _check_same_static_shape(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if not _shape_unchanged(m["x"], node.outputs[0]):
        return Match.fail("output shape differs from the input's (or is not static)", node)
    return OK


def _check_transpose(model: Model, graph: Graph, m: Match) -> Match:
    node, x = m["root"], m["x"]
    perm = ir.attr_ints(node, "perm")
    if perm is None:
        r = ir.rank(x)
        if r is None or r > 1:
            return Match.fail("default (reversing) perm on a value of rank > 1 or unknown", node)
        return OK
    if perm != list(range(len(perm))):
        return Match.fail(f"perm {perm} is not the identity", node)
    return OK


def _check_slice(model: Model, graph: Graph, m: Match) -> Match:
    node, x = m["root"], m["x"]
    shape = ir.static_shape(x)
    if shape is None:
        return Match.fail("input shape is not static", node)
    if model.opset < 10:
        starts, ends = ir.attr_ints(node, "starts"), ir.attr_ints(node, "ends")
        axes, steps = ir.attr_ints(node, "axes"), None
    else:
        starts, ends = _const_ints(m["starts"]), _const_ints(m["ends"])
        axes = _const_ints(m["axes"]) if m.values.get("axes") is not None else None
        steps = _const_ints(m["steps"]) if m.values.get("steps") is not None else None
        if starts is None or ends is None or (m.values.get("axes") is not None and axes is None):
            return Match.fail("starts/ends/axes are not constants", node)
        if m.values.get("steps") is not None and steps is None:
            return Match.fail("steps are not constants", node)
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=False):
        dim = shape[axis]
        if step != 1:
            return Match.fail(f"step {step} on axis {axis}", node)
        start = min(max(start + dim if start < 0 else start, 0), dim)
        end = min(max(end + dim if end < 0 else end, 0), dim)
        if start != 0 or end != dim:
            return Match.fail(f"axis {axis} is sliced to [{start}:{end}] of {dim}", node)
    return OK


def _check_pad(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if model.opset < 11:
        pads = ir.attr_ints(node, "pads", ir.attr_ints(node, "paddings"))
    else:
        pads = _const_ints(m.values.get("pads"))
    if pads is None:
        return Match.fail("pads are not constants", node)
    if any(pads):
        return Match.fail(f"pads {pads} are not all zero", node)
    return OK


def _check_single_input(model: Model, graph: Graph, m: Match) -> Match:
    return _interface_guard(graph, m)


def _check_squeeze(model: Model, graph: Graph, m: Match) -> Match:
    node, x = m["root"], m["x"]
    axes = _axes(model, node, m)
    if axes is None:
        return Match.fail("axes are not constants", node)
    if axes:
        return Match.fail("Squeeze with axes removes dimensions", node)
    # No axes: every size-1 dimension goes, so all sizes must be known and != 1.
    shape = ir.static_shape(x)
    if shape is None or 1 in shape:
        return Match.fail("Squeeze without axes on a shape that may have size-1 dims", node)
    return OK


def _check_unsqueeze(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    axes = _axes(model, node, m)
    if axes is None or axes:
        return Match.fail("Unsqueeze with (or with unknown) axes adds dimensions", node)
    return OK


def _axes(model: Model, node: Node, m: Match) -> list[int] | None:
    """Squeeze/Unsqueeze axes ([] when absent), None when they are computed at run time."""
    if model.opset < 13:
        return ir.attr_ints(node, "axes", [])
    value = m.values.get("axes")
    return [] if value is None else _const_ints(value)


def _check_split(model: Model, graph: Graph, m: Match) -> Match:
    node = m["root"]
    if len(node.outputs) != 1:
        return Match.fail(f"Split into {len(node.outputs)} outputs", node)
    return OK


def _check_flatten(model: Model, graph: Graph, m: Match) -> Match:
    node, x = m["root"], m["x"]
    r = ir.rank(x)
    axis = ir.attr_int(node, "axis", 1)
    if r == 2 and axis in (1, -1):
        return OK
    if _shape_unchanged(x, node.outputs[0]):
        return OK
    return Match.fail("Flatten changes the shape (or the shape is unknown)", node)


def _constant_of(value: float):
    def check(model: Model, graph: Graph, m: Match) -> Match:
        node, x, c = m["root"], m["x"], m["c"]
        array = np.asarray(ir.const_value(c))
        if array.size == 0 or not np.all(array == value):
            return Match.fail(f"constant '{c.name}' is not all {value:g}", node)
        out = node.outputs[0]
        if not _same_dtype(x, out):
            return Match.fail("output dtype differs from the input's (or is unknown)", node)
        r = ir.rank(x)
        # A one-element constant of rank <= x's never changes x's shape by broadcasting.
        if not (
            _shape_unchanged(x, out) or (array.size == 1 and r is not None and array.ndim <= r)
        ):
            return Match.fail("broadcasting the constant may change the output shape", node)
        return OK

    return check


def _forward_first(model: Model, graph: Graph, m: Match) -> None:
    node = m["root"]
    forward_output(graph, node, node.outputs[0], m["x"])


def _rule(op_type: str, pattern_inputs: tuple, check, min_opset: int = 1) -> Rule:
    return Rule(
        f"remove_noop_{op_type.lower()}",
        op(op_type, *pattern_inputs, name="root"),
        check,
        _forward_first,
        min_opset=min_opset,
    )


_X = var("x")


def _opt(name: str):
    return var(name, optional=True)


RULES = [
    _rule("Identity", (_X,), _check_identity),
    _rule("Dropout", (_X, _opt("ratio"), _opt("training_mode")), _check_dropout),
    _rule("Cast", (_X,), _check_cast),
    _rule("CastLike", (_X, var("like")), _check_cast, min_opset=15),
    _rule("Reshape", (_X, var("shape")), _check_reshape, min_opset=5),
    _rule("Expand", (_X, var("shape")), _check_same_static_shape),
    _rule("Transpose", (_X,), _check_transpose),
    _rule(
        "Slice",
        (_X, _opt("starts"), _opt("ends"), _opt("axes"), _opt("steps")),
        _check_slice,
    ),
    _rule("Pad", (_X, _opt("pads"), _opt("value"), _opt("pad_axes")), _check_pad),
    _rule("Concat", (_X,), _check_single_input),
    _rule("Sum", (_X,), _check_single_input),
    _rule("Max", (_X,), _check_single_input),
    _rule("Min", (_X,), _check_single_input),
    _rule("Squeeze", (_X, _opt("axes")), _check_squeeze),
    _rule("Unsqueeze", (_X, _opt("axes")), _check_unsqueeze),
    _rule("Split", (_X, _opt("split")), _check_split),
    _rule("Flatten", (_X,), _check_flatten),
    _rule("Mul", (_X, const("c")), _constant_of(1.0)),
    _rule("Div", (_X, const("c")), _constant_of(1.0)),
    _rule("Add", (_X, const("c")), _constant_of(0.0)),
    _rule("Sub", (_X, const("c")), _constant_of(0.0)),
    _rule("Pow", (_X, const("c")), _constant_of(1.0)),
]
"""The no-op rules; each is counted in stats as ``"<Op> removed"``."""


class EliminateNoops(RewritePass):
    """Removes nodes whose output equals their (first) input.

    Rewrites (each counted as ``"<Op> removed"``): Identity; Dropout in inference (no or
    constant-false ``training_mode``, unused mask); Cast/CastLike to the input's own dtype;
    Reshape to the input's shape (constant target, resolving ``0``/``-1``, or equal static
    shapes); Expand and Flatten whose static output shape equals the input's; Transpose
    with the identity perm; Slice that selects everything (static shape, step 1); Pad with
    all-zero pads; Concat/Sum/Max/Min of one input; Unsqueeze with empty axes and Squeeze
    without axes on a shape with no size-1 dims; Split into one output; ``x*1``, ``x/1``,
    ``x+0``, ``x-0``, ``x**1`` with a constant whose broadcast changes neither shape nor dtype.

    ``x + 0`` turns ``-0.0`` into ``+0.0``; it is removed anyway (the difference only shows
    through ``1/x`` or ``copysign``). ``x * 1``, ``x / 1``, ``x - 0``, ``x ** 1`` are exact.

    Refuses when a needed dtype or shape is unknown, when an operand is computed at run
    time, and when another output of the node (Dropout's mask) is used. A node whose
    output is a graph output and whose input cannot take that name (a graph input or
    output, a constant, an outer-scope value) is replaced by an Identity that keeps the
    interface name; such Identities are left alone and not counted.
    """

    name = "eliminate_noops"
    summary = "remove Identity, same-type Cast, x*1, identity Transpose/Reshape/Slice/Pad, ..."
    rules = RULES

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        res = super().run(model, ctx)
        by_rule = {rule.name: f"{rule.pattern.op} removed" for rule in self.rules}
        stats: Counter[str] = Counter()
        for key, count in res.stats.items():
            stats[by_rule.get(key, key)] += count
        return result(model, stats)
