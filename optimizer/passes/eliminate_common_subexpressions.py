"""Common-subexpression elimination: identical nodes on identical inputs computed once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result
from optimizer.passes.merge_duplicate_initializers import array_key, same_array
from optimizer.passes.op_sets import RANDOM_OPS

log = logging.getLogger(__name__)

# Two calls of these give different results: never merged.
NONDETERMINISTIC = RANDOM_OPS | {"Dropout"}
# Custom domains may hold stateful ops; these ones are known to be pure functions.
PURE_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


class _Unmergeable(Exception):
    """An attribute this pass cannot compare (a subgraph or an unknown type)."""


class EliminateCommonSubexpressions(Pass):
    """Merges nodes that compute the same thing: the later one's outputs become the earlier's.

    Two nodes are the same when op, domain, attributes (compared by value: numbers with their
    type, lists, arrays and tensors by dtype/shape/bytes) and inputs agree; an input agrees
    when it is the same value, or a constant with equal dtype, shape and bytes. Nodes are
    visited in topological order, so once two nodes merge their consumers compare equal and
    whole duplicated chains collapse in one run. Each graph scope is handled on its own. A
    merged node's graph output keeps its name (an Identity when both names are outputs).

    Refuses: random ops and Dropout, nodes holding subgraphs, attributes of unknown types,
    non-standard domains, and pairs whose present (non-omitted) outputs differ.
    """

    name = "eliminate_common_subexpressions"
    summary = "compute identical nodes on identical inputs only once"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        digests: dict[int, tuple[ir.Value, Hashable]] = {}
        for graph in list(ir.iter_graphs(model.graph)):
            seen: dict[Hashable, ir.Node] = {}
            for node in list(graph.nodes):
                key = _node_key(node, digests)
                if key is None:
                    continue
                earlier = seen.get(key)
                if earlier is None:
                    seen[key] = node
                elif _same_constants(earlier, node):
                    _merge(graph, earlier, node)
                    stats["duplicate node merged"] += 1
                else:  # a digest collision: keep both
                    log.debug("digest collision between %s and %s", earlier.name, node.name)
        return result(model, stats)


def _merge(graph: ir.Graph, keep: ir.Node, drop: ir.Node) -> None:
    pairs = list(zip(keep.outputs, drop.outputs, strict=True))
    ir.remove_node(graph, drop)
    for new, old in pairs:
        if not ir.is_empty(old):
            ir.replace_all_uses(graph, old, new)


def _node_key(node: ir.Node, digests: dict[int, tuple[ir.Value, Hashable]]) -> Hashable | None:
    domain = node.domain or ""
    if domain not in PURE_DOMAINS or node.op in NONDETERMINISTIC:
        return None
    try:
        attrs = tuple(sorted((k, _attr_key(v)) for k, v in node.attrs.items()))
    except _Unmergeable as exc:
        log.debug("not merging %s (%s): %s", node.name, node.op, exc)
        return None
    inputs = tuple(_input_key(v, digests) for v in node.inputs)
    present = tuple(not ir.is_empty(o) for o in node.outputs)
    return (domain, node.op, attrs, inputs, present)


def _input_key(value: ir.Value, digests: dict[int, tuple[ir.Value, Hashable]]) -> Hashable:
    if ir.is_empty(value):
        return ("empty",)
    if ir.is_constant(value):
        # The value is stored with its key so that its id cannot be reused while cached.
        cached = digests.get(id(value))
        if cached is None:
            cached = digests[id(value)] = (value, array_key(ir.const_value(value)))
        return cached[1]
    return ("value", id(value))


def _attr_key(value: object) -> Hashable:
    if isinstance(value, (bool, int, float, str, bytes)) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_attr_key(v) for v in value))
    if isinstance(value, np.ndarray):
        return array_key(value)
    if isinstance(value, np.generic):
        return array_key(np.asarray(value))
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return ("dtype", np.dtype(value).str)
    if isinstance(value, ir.Graph):
        raise _Unmergeable("node holds a subgraph")
    if ir.is_constant(value):
        return array_key(ir.const_value(value))
    raise _Unmergeable(f"attribute of type {type(value).__name__}")


def _same_constants(a: ir.Node, b: ir.Node) -> bool:
    """Full comparison of the constant inputs whose digests matched."""
    return all(
        x is y or same_array(ir.const_value(x), ir.const_value(y))
        for x, y in zip(a.inputs, b.inputs, strict=True)
        if ir.is_constant(x) and ir.is_constant(y)
    )
