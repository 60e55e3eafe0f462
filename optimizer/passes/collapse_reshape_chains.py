"""Collapsing chains of Reshape/Flatten/Squeeze/Unsqueeze into one node (or none)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.eliminate_noops import forward_output
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, op, var

log = logging.getLogger(__name__)

RESHAPE_LIKE = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
# Reshape's target shape is an input from opset 5 on; every rule here may create a Reshape.
_MIN_OPSET = 5


# -- chain walking -----------------------------------------------------------------------------


def _is_reshape_like(node: Node | None) -> bool:
    return (
        node is not None
        and node.op in RESHAPE_LIKE
        and (node.domain or "") in ("", "ai.onnx")
        and len(node.outputs) == 1
    )


def _previous(graph: Graph, node: Node) -> Node | None:
    """The reshape-like node whose output only ``node`` reads, as its data input."""
    src = ir.producer(node.inputs[0])
    if not _is_reshape_like(src) or ir.single_consumer(graph, node.inputs[0]) is not node:
        return None
    return src


def _next(graph: Graph, node: Node) -> Node | None:
    out = node.outputs[0]
    user = ir.single_consumer(graph, out)
    if not _is_reshape_like(user) or user.inputs[0] is not out:
        return None
    if any(v is out for v in user.inputs[1:]):
        return None
    return user


def chain_ending_at(graph: Graph, node: Node) -> list[Node]:
    """The reshape-like nodes feeding ``node`` one by one, first to last, ``node`` included."""
    chain = [node]
    while (prev := _previous(graph, chain[0])) is not None and all(prev is not n for n in chain):
        chain.insert(0, prev)
    return chain


def _chain_end(graph: Graph, node: Node) -> Node:
    seen = {id(node)}
    while (nxt := _next(graph, node)) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        node = nxt
    return node


def _static_target(model: Model, graph: Graph, end: Node) -> tuple[int, ...] | None:
    """The shape a one-Reshape replacement of the chain ending at ``end`` would use."""
    shape = ir.static_shape(end.outputs[0])
    if shape is None or ir.numpy_dtype_of(end.outputs[0]) is None:
        return None
    if 0 in shape and model.opset < 14:
        return None  # a literal 0 needs allowzero (opset 14)
    return shape


def _left_to_static_collapse(model: Model, graph: Graph, node: Node) -> bool:
    end = _chain_end(graph, node)
    return _static_target(model, graph, end) is not None and len(chain_ending_at(graph, end)) > 1


# -- axes --------------------------------------------------------------------------------------


def _axes(model: Model, node: Node) -> list[int] | None:
    """Squeeze/Unsqueeze axes; [] when absent; None when computed at run time."""
    if model.opset < 13:
        return ir.attr_ints(node, "axes", [])
    if len(node.inputs) < 2 or ir.is_empty(node.inputs[1]):
        return []
    array = ir.const_value(node.inputs[1])
    return None if array is None else [int(a) for a in np.asarray(array).reshape(-1)]


def _normalized(axes: Sequence[int], rank: int) -> list[int] | None:
    out = [a + rank if a < 0 else a for a in axes]
    if any(not 0 <= a < rank for a in out) or len(set(out)) != len(out):
        return None
    return sorted(out)


def _add_axes_node(
    model: Model, graph: Graph, op_type: str, x: Value, axes: list[int], like: Value
) -> Value:
    out = ir.make_value(graph, f"{like.name}_{op_type.lower()}", like.dtype, like.shape)
    if model.opset < 13:
        ir.add_node(graph, op_type, [x], [out], attrs={"axes": axes})
    else:
        const = ir.make_constant(graph, np.array(axes, np.int64), f"{like.name}_axes")
        ir.add_node(graph, op_type, [x, const], [out])
    return out


# -- rules -------------------------------------------------------------------------------------


def _check_static(model: Model, graph: Graph, m: Match) -> Match:
    root = m["root"]
    if _next(graph, root) is not None:
        return Match.fail("not the end of the chain", root)
    if len(chain_ending_at(graph, root)) < 2:
        return Match.fail("no reshape-like producer with a single consumer", root)
    if _static_target(model, graph, root) is None:
        return Match.fail("final shape is not static (or has a 0 before opset 14)", root)
    return OK


def _rewrite_static(model: Model, graph: Graph, m: Match) -> None:
    root = m["root"]
    chain = chain_ending_at(graph, root)
    shape = _static_target(model, graph, root)
    out = root.outputs[0]
    target = ir.make_constant(graph, np.array(shape, np.int64), f"{out.name}_shape")
    new = ir.make_value(graph, f"{out.name}_reshaped", out.dtype, list(shape))
    attrs = {"allowzero": 1} if 0 in shape else {}
    ir.add_node(graph, "Reshape", [chain[0].inputs[0], target], [new], attrs=attrs)
    log.debug("collapsed %s into one Reshape to %s", [n.op for n in chain], shape)
    ir.replace_all_uses(graph, out, new)


def _check_reshape_merge(model: Model, graph: Graph, m: Match) -> Match:
    root = m["root"]
    if _left_to_static_collapse(model, graph, root):
        return Match.fail("left to the static chain collapse", root)
    if ir.attr_int(root, "allowzero", 0):
        return OK  # zeros are literal sizes: the target does not look at its input
    array = ir.const_value(m["shape"])
    if array is None:
        return Match.fail("second target shape is computed at run time", root)
    if 0 in np.asarray(array).reshape(-1).tolist():
        return Match.fail("second target copies dimensions (0) of the intermediate", root)
    return OK


def _rewrite_reshape_merge(model: Model, graph: Graph, m: Match) -> None:
    root = m["root"]
    out = root.outputs[0]
    new = ir.make_value(graph, f"{out.name}_reshaped", out.dtype, out.shape)
    ir.add_node(graph, "Reshape", [m["x"], m["shape"]], [new], attrs=dict(root.attrs))
    ir.replace_all_uses(graph, out, new)


def _pair_axes(model: Model, m: Match) -> tuple[list[int], list[int], int] | None:
    first, root = m["first"], m["root"]
    a1, a2 = _axes(model, first), _axes(model, root)
    r = ir.rank(m["x"])
    if a1 is None or a2 is None or r is None or not a1 or not a2:
        return None
    return a1, a2, r


def _merged_unsqueeze_axes(model: Model, m: Match) -> list[int] | None:
    found = _pair_axes(model, m)
    if found is None:
        return None
    a1, a2, r = found
    mid, final = r + len(a1), r + len(a1) + len(a2)
    n1, n2 = _normalized(a1, mid), _normalized(a2, final)
    if n1 is None or n2 is None:
        return None
    # Intermediate dim j sits at the j-th final position that the second Unsqueeze leaves.
    kept = [p for p in range(final) if p not in n2]
    return sorted(n2 + [kept[j] for j in n1])


def _merged_squeeze_axes(model: Model, m: Match) -> list[int] | None:
    found = _pair_axes(model, m)
    if found is None:
        return None
    a1, a2, r = found
    n1 = _normalized(a1, r)
    n2 = _normalized(a2, r - len(a1)) if n1 is not None else None
    if n1 is None or n2 is None:
        return None
    # Intermediate dim j is the j-th input dim that the first Squeeze leaves.
    kept = [p for p in range(r) if p not in n1]
    return sorted(n1 + [kept[j] for j in n2])


def _merge_check(merged):
    def check(model: Model, graph: Graph, m: Match) -> Match:
        root = m["root"]
        if _left_to_static_collapse(model, graph, root):
            return Match.fail("left to the static chain collapse", root)
        if merged(model, m) is None:
            return Match.fail("axes unknown, absent, or rank of the input unknown", root)
        return OK

    return check


def _merge_rewrite(merged):
    def rewrite(model: Model, graph: Graph, m: Match) -> None:
        root = m["root"]
        out = root.outputs[0]
        new = _add_axes_node(model, graph, root.op, m["x"], merged(model, m), out)
        ir.replace_all_uses(graph, out, new)

    return rewrite


def _cancelling_axes(model: Model, m: Match) -> bool:
    """Unsqueeze->Squeeze or Squeeze->Unsqueeze of the same axes (same dims back)."""
    found = _pair_axes(model, m)
    if found is None:
        return False
    a1, a2, r = found
    # The rank between the two nodes, where both axis lists are interpreted.
    between = r + len(a1) if m["first"].op == "Unsqueeze" else r
    n1, n2 = _normalized(a1, between), _normalized(a2, between)
    return n1 is not None and n1 == n2


def _check_cancel(model: Model, graph: Graph, m: Match) -> Match:
    if not _cancelling_axes(model, m):
        return Match.fail("axes differ, are unknown, or the input rank is unknown", m["root"])
    return OK


def _rewrite_cancel(model: Model, graph: Graph, m: Match) -> None:
    root = m["root"]
    forward_output(graph, root, root.outputs[0], m["x"])


def _axes_op(op_type: str, x, axes_name: str, name: str):
    return op(op_type, x, var(axes_name, optional=True), name=name)


def _first(op_type: str):
    if op_type == "Reshape":
        return op("Reshape", var("x"), var("first_shape"), name="first")
    if op_type == "Flatten":
        return op("Flatten", var("x"), name="first")
    return _axes_op(op_type, var("x"), "first_axes", "first")


def _rule(name: str, pattern, check, rewrite) -> Rule:
    return Rule(name, pattern, check, rewrite, min_opset=_MIN_OPSET)


RULES = [
    # Cancelling pairs first: removing both nodes beats collapsing them into one Reshape.
    _rule(
        "Unsqueeze-Squeeze cancelled",
        _axes_op("Squeeze", _first("Unsqueeze"), "axes", "root"),
        _check_cancel,
        _rewrite_cancel,
    ),
    _rule(
        "Squeeze-Unsqueeze cancelled",
        _axes_op("Unsqueeze", _first("Squeeze"), "axes", "root"),
        _check_cancel,
        _rewrite_cancel,
    ),
    *[
        _rule(
            "reshape chain collapsed",
            op(op_type, var("x"), var("arg", optional=True), name="root"),
            _check_static,
            _rewrite_static,
        )
        for op_type in RESHAPE_LIKE
    ],
    *[
        _rule(
            "Reshape merged",
            op("Reshape", _first(first), var("shape"), name="root"),
            _check_reshape_merge,
            _rewrite_reshape_merge,
        )
        for first in RESHAPE_LIKE
    ],
    _rule(
        "Unsqueeze merged",
        _axes_op("Unsqueeze", _first("Unsqueeze"), "axes", "root"),
        _merge_check(_merged_unsqueeze_axes),
        _merge_rewrite(_merged_unsqueeze_axes),
    ),
    _rule(
        "Squeeze merged",
        _axes_op("Squeeze", _first("Squeeze"), "axes", "root"),
        _merge_check(_merged_squeeze_axes),
        _merge_rewrite(_merged_squeeze_axes),
    ),
]


class CollapseReshapeChains(RewritePass):
    """Collapses chains of Reshape/Flatten/Squeeze/Unsqueeze.

    A chain is a run of these ops where each intermediate value has exactly one reader (the
    next op, as its data input) and is not a graph output. Rewrites:

    * ``reshape chain collapsed``: when the chain's final shape is fully static, the whole
      chain becomes one Reshape to that constant shape (``allowzero=1`` for a 0-sized dim,
      opset 14+; refused before).
    * ``Unsqueeze-Squeeze cancelled`` / ``Squeeze-Unsqueeze cancelled``: a pair that adds and
      removes the same axes disappears (also in static chains: no node beats one node).
    * With symbolic dims: ``Reshape merged`` (anything reshape-like then a Reshape whose
      constant target has no 0, since 0 copies a dim of the intermediate; or ``allowzero=1``)
      keeps only the second Reshape; ``Unsqueeze merged`` / ``Squeeze merged`` fuse a pair
      into one node with the combined axes (explicit axes and known input rank needed).

    Axes are attributes before opset 13 and an input from 13 on; rules need opset 5 (Reshape
    with a shape input). Refuses intermediates with other readers or that are graph outputs,
    axes computed at run time, and Squeeze without axes in pairs (which dims go is unknown).
    """

    name = "collapse_reshape_chains"
    summary = "collapse Reshape/Flatten/Squeeze/Unsqueeze chains into one Reshape or none"
    rules = RULES
