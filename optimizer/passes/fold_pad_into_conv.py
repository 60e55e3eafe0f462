"""Fold a constant spatial Pad into the Conv/AveragePool/MaxPool after it."""

from __future__ import annotations

import logging

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, const, op, var

log = logging.getLogger(__name__)

# Value the Pad must fill with for each consumer: the padding the consumer itself applies.
_FILL = {"Conv": 0.0, "AveragePool": 0.0, "MaxPool": -np.inf}


def _pad_pattern():
    # Before opset 11 pads and value are attributes; from 11 inputs; `axes` input from 18.
    return op(
        "Pad",
        var("x"),
        const("pads", optional=True),
        const("value", optional=True),
        const("axes", optional=True),
        name="pad",
    )


def _pattern(consumer: str):
    if consumer == "Conv":
        return op("Conv", _pad_pattern(), var("w"), var("b", optional=True), name="consumer")
    return op(consumer, _pad_pattern(), name="consumer")


def _spatial_rank(m: Match) -> int | None:
    node = m["consumer"]
    if node.op == "Conv":
        w = m["w"]
        r = ir.rank(w)
        return None if r is None else r - 2
    kernel = ir.attr_ints(node, "kernel_shape")
    return None if kernel is None else len(kernel)


def _pad_amounts(model: Model, m: Match, rank: int) -> tuple[list[int] | None, str]:
    """The Pad's [begin..., end...] amounts over all ``rank`` axes, or None and why not."""
    pad = m["pad"]
    if model.opset < 11:
        pads = ir.attr_ints(pad, "pads")
        if pads is None:
            return None, "Pad has no 'pads' attribute"
    else:
        if m["pads"] is None:
            return None, "Pad has no pads input"
        pads = [int(v) for v in ir.const_value(m["pads"]).reshape(-1)]
    axes_value = m.values.get("axes")
    if axes_value is None:
        if len(pads) != 2 * rank:
            return None, f"Pad has {len(pads)} pad amounts for a rank-{rank} input"
        return pads, ""
    axes = [int(a) for a in ir.const_value(axes_value).reshape(-1)]
    axes = [a + rank if a < 0 else a for a in axes]
    if len(pads) != 2 * len(axes) or any(not 0 <= a < rank for a in axes):
        return None, f"Pad axes {axes} do not fit pads {pads} on a rank-{rank} input"
    if len(set(axes)) != len(axes):
        return None, f"Pad axes {axes} repeat"
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a] = pads[i]
        full[rank + a] = pads[len(axes) + i]
    return full, ""


def _pad_fill(model: Model, m: Match) -> float:
    if model.opset < 11:
        return ir.attr_float(m["pad"], "value", 0.0) or 0.0
    value = m.values.get("value")
    if value is None:
        return 0.0
    array = ir.const_value(value).reshape(-1)
    return float(array[0]) if array.size == 1 else float("nan")


def _check(model: Model, graph: Graph, m: Match) -> Match:
    pad, node = m["pad"], m["consumer"]
    mode = ir.attr_str(pad, "mode", "constant")
    if mode != "constant":
        return Match.fail(f"Pad mode is '{mode}', only 'constant' folds", pad)
    if ir.attr_str(node, "auto_pad", "NOTSET") != "NOTSET":
        return Match.fail(f"{node.op} uses auto_pad={ir.attr_str(node, 'auto_pad')}", node)
    spatial = _spatial_rank(m)
    if spatial is None:
        return Match.fail(f"{node.op} spatial rank unknown", node)
    rank = spatial + 2
    x_rank = ir.rank(m["x"])
    if x_rank is not None and x_rank != rank:
        return Match.fail(f"Pad input rank {x_rank} != {node.op} input rank {rank}", pad)
    pads, reason = _pad_amounts(model, m, rank)
    if pads is None:
        return Match.fail(reason, pad)
    if any(p < 0 for p in pads):
        return Match.fail(f"Pad crops (negative pads {pads})", pad)
    if any(pads[a] or pads[rank + a] for a in (0, 1)):
        return Match.fail(f"Pad pads the batch or channel axis (pads {pads})", pad)
    fill = _pad_fill(model, m)
    want = _FILL[node.op]
    if fill != want:
        what = "-inf (MaxPool padding ignores padded cells)" if node.op == "MaxPool" else "0"
        return Match.fail(f"Pad value {fill} is not {what}", pad)
    old = ir.attr_ints(node, "pads", [0] * (2 * spatial))
    if len(old) != 2 * spatial:
        return Match.fail(f"{node.op} pads {old} do not match spatial rank {spatial}", node)
    if node.op == "Conv":
        return OK
    # Pooling: ceil_mode drops windows that start in the padding, which Pad's cells are not.
    if ir.attr_int(node, "ceil_mode", 0):
        return Match.fail(f"{node.op} uses ceil_mode=1", node)
    if node.op == "AveragePool" and model.opset < 7:
        return Match.fail("AveragePool has no count_include_pad before opset 7", node)
    if node.op == "AveragePool" and not ir.attr_int(node, "count_include_pad", 0) and any(old):
        return Match.fail(
            "AveragePool excludes its own padding from the average (count_include_pad=0) "
            "but the Pad's zeros count",
            node,
        )
    for extra in node.outputs[1:]:
        if not ir.is_empty(extra) and (ir.consumers(extra) or ir.is_graph_output(graph, extra)):
            return Match.fail(f"{node.op} Indices output '{extra.name}' is used", node)
    kernel = ir.attr_ints(node, "kernel_shape") or []
    merged = _merged(old, pads, spatial)
    if any(p >= kernel[i % spatial] for i, p in enumerate(merged)):
        return Match.fail(f"merged pads {merged} reach the kernel size {kernel}", node)
    return OK


def _merged(old: list[int], pads: list[int], spatial: int) -> list[int]:
    rank = spatial + 2
    begin = [old[i] + pads[2 + i] for i in range(spatial)]
    end = [old[spatial + i] + pads[rank + 2 + i] for i in range(spatial)]
    return begin + end


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    node: Node = m["consumer"]
    spatial = _spatial_rank(m)
    assert spatial is not None
    pads, _ = _pad_amounts(model, m, spatial + 2)
    assert pads is not None
    attrs = dict(node.attrs)
    attrs["pads"] = _merged(ir.attr_ints(node, "pads", [0] * (2 * spatial)), pads, spatial)
    if node.op == "AveragePool":
        attrs["count_include_pad"] = 1
    inputs = [m["x"], *node.inputs[1:]]
    # Only output 0 is kept: the check made sure MaxPool's Indices output is unused.
    old = node.outputs[0]
    out = ir.make_value(graph, f"{old.name}_nopad", old.dtype, old.shape)
    ir.add_node(graph, node.op, inputs, [out], attrs, name=node.name or node.op)
    ir.replace_all_uses(graph, old, out)


RULES = [
    Rule(f"Pad folded into {consumer}", _pattern(consumer), _check, _rewrite, min_opset=2)
    for consumer in _FILL
]


class FoldPadIntoConv(RewritePass):
    """Folds a constant, spatial-only Pad into the ``pads`` of the Conv or pooling after it.

    ``Conv(Pad(x))`` becomes ``Conv(x)`` with the Pad's amounts added to its ``pads``; so
    does ``AveragePool`` (then with ``count_include_pad=1``, since the Pad's zeros were real
    cells of the average) and ``MaxPool`` when the Pad fills with ``-inf``. Handles Pad's
    opset forms (``pads``/``value`` attributes before opset 11, inputs after, ``axes`` input
    from opset 18).

    Refuses for a mode other than ``constant``, a non-constant fill, a fill other than 0
    (``-inf`` for MaxPool: a zero-padded MaxPool is not a MaxPool with padding), non-constant
    or negative pads, pads on the batch or channel axis, ``auto_pad`` other than NOTSET, a Pad
    output with other consumers, pooling with ``ceil_mode=1`` or merged pads reaching the
    kernel size (which onnxruntime rejects), an AveragePool that already pads with
    ``count_include_pad=0`` or predates that attribute (opset < 7), and a MaxPool whose
    Indices output is used (indices would address the unpadded input).
    """

    name = "fold_pad_into_conv"
    summary = "fold a constant spatial Pad into Conv/AveragePool/MaxPool pads"
    rules = RULES
