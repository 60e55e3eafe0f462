"""Reduce(keepdims=1) followed by a Reshape/Squeeze/Flatten that drops the reduced dims ->
Reduce(keepdims=0).

Classifier heads written as ``x.mean((2, 3), keepdim=True).view(n, -1)`` or exported that way
(the dynamo exporter turns AdaptiveAvgPool2d + view into ReduceMean + Reshape) compute the
reduction and then throw away its size-1 axes: ``keepdims=0`` does both in one node.
"""

from __future__ import annotations

import logging

from optimizer import ir
from optimizer.ir import Graph, Model
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, op, var

log = logging.getLogger(__name__)

REDUCE_OPS = (
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)
SHAPE_OPS = ("Reshape", "Squeeze", "Flatten")


def _check(model: Model, graph: Graph, m: Match) -> Match:
    reduce_node, shape_node = m["reduce"], m["shape_op"]
    if ir.attr_int(reduce_node, "keepdims", 1) != 1:
        return Match.fail("the reduction already drops its axes", reduce_node)
    if ir.attr_int(reduce_node, "noop_with_empty_axes", 0) == 1:
        return Match.fail("noop_with_empty_axes=1", reduce_node)
    x = reduce_node.inputs[0]
    if ir.rank(x) is None:
        return Match.fail("input rank unknown", reduce_node)
    axes = _axes(reduce_node, ir.rank(x), model.opset)
    if axes is None:
        return Match.fail("reduction axes are not constant", reduce_node)
    kept = reduce_node.outputs[0].shape
    want = shape_node.outputs[0].shape
    if kept is None or want is None:
        return Match.fail("shapes unknown", shape_node)
    dropped = [d for i, d in enumerate(kept) if i not in axes]
    if len(dropped) != len(want) or not all(_same(a, b) for a, b in zip(dropped, want)):
        return Match.fail(
            f"{shape_node.op} gives {want}, not the reduction without its axes {dropped}",
            shape_node,
        )
    return OK


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    reduce_node, shape_node = m["reduce"], m["shape_op"]
    attrs = dict(reduce_node.attrs)
    attrs["keepdims"] = 0
    out = shape_node.outputs[0]
    new = ir.add_node(
        graph,
        reduce_node.op,
        list(reduce_node.inputs),
        1,
        attrs,
        name=reduce_node.name,
        domain=reduce_node.domain,
    )
    new.outputs[0].dtype, new.outputs[0].shape = out.dtype, out.shape
    ir.replace_all_uses(graph, out, new.outputs[0])


def _axes(node: ir.Node, rank: int, opset: int) -> set[int] | None:
    axes_input_from = 13 if node.op == "ReduceSum" else 18
    if opset >= axes_input_from:
        if len(node.inputs) < 2 or ir.is_empty(node.inputs[1]):
            return set(range(rank))  # no axes: reduce everything
        values = ir.const_value(node.inputs[1])
        if values is None:
            return None
        axes = [int(a) for a in values.reshape(-1)]
    else:
        axes = ir.attr_ints(node, "axes", list(range(rank)))
    return {a + rank if a < 0 else a for a in axes}


def _same(a: int | str | None, b: int | str | None) -> bool:
    return a is not None and a == b and not (isinstance(a, str) and a.startswith("unk__"))


RULES = [
    Rule(
        f"{shape_op} folded into {reduce} keepdims=0",
        op(
            shape_op,
            op(reduce, var("x"), var("axes", optional=True), name="reduce"),
            var("target", optional=True),
            name="shape_op",
        ),
        _check,
        _rewrite,
    )
    for reduce in REDUCE_OPS
    for shape_op in SHAPE_OPS
]


class FoldReshapeIntoReduce(RewritePass):
    """Reduce(keepdims=1) -> Reshape/Squeeze/Flatten dropping exactly the reduced axes becomes
    Reduce(keepdims=0).

    Refuses when the shapes involved are not known well enough to prove the Reshape drops
    exactly the reduced size-1 axes (symbolic dims must carry the same name), when the axes
    are not constant, or when the reduction has other consumers.
    """

    name = "fold_reshape_into_reduce"
    summary = "Reduce(keepdims=1) + Reshape dropping the reduced axes -> Reduce(keepdims=0)"
    rules = RULES
