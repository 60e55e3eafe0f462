"""Inlining of If nodes whose condition is a constant."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)

# Each inlining removes one If node, so the loop ends; the cap only guards against a bug.
_MAX_INLINES = 100_000


def constant_condition(cond: Value) -> bool | None:
    """The truth value of a one-element constant condition, None when not constant."""
    array = ir.const_value(cond)
    if array is None:
        src = ir.producer(cond)
        if src is None or src.op != "Constant" or (src.domain or "") not in ("", "ai.onnx"):
            return None
        value = src.attrs.get("value")
        array = value.values if isinstance(value, ir.Constant) else None
    if array is None or np.asarray(array).size != 1:
        return None
    return bool(np.asarray(array).reshape(-1)[0])


class InlineConstantIf(Pass):
    """Replaces an ``If`` with a constant condition by the nodes of the branch it takes.

    The chosen branch's nodes move into the graph holding the If; the branch outputs become
    the If's outputs (same names, so the parent's interface is untouched). Branch values
    whose names clash with a name elsewhere in the model are renamed. Values the branch
    reads from an enclosing scope stay shared. A branch output that the branch does not
    compute (an outer-scope value or a constant) is forwarded to the If output's readers,
    or, when the If output is a graph output, computed by an Identity that keeps its name.
    Nested Ifs that become inlinable are inlined too, in every graph (Loop/Scan bodies).

    Refuses (leaves the If) when the condition is computed at run time or is not a
    one-element tensor.
    """

    name = "inline_constant_if"
    summary = "replace an If with a constant condition by the branch it takes"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for _ in range(_MAX_INLINES):
            found = _next_constant_if(model.graph)
            if found is None:
                break
            graph, node, taken = found
            _inline(model, graph, node, taken)
            stats["If inlined"] += 1
        return result(model, stats)


def _next_constant_if(root: Graph) -> tuple[Graph, Node, bool] | None:
    for graph, node in ir.iter_nodes(root):
        if node.op != "If" or (node.domain or "") not in ("", "ai.onnx"):
            continue
        taken = constant_condition(node.inputs[0])
        if taken is None:
            log.debug("If '%s': condition is not a constant", node.name)
            continue
        return graph, node, taken
    return None


def _names_outside(root: Graph, skip: Node) -> tuple[set[str], set[int]]:
    """Value/node names and value ids of the model, leaving out ``skip``'s branches."""
    names: set[str] = set()
    ids: set[int] = set()

    def visit(graph: Graph) -> None:
        for value in graph.inputs:
            names.add(value.name)
            ids.add(id(value))
        for value in graph.outputs:
            names.add(value.name)
            ids.add(id(value))
        for node in graph.nodes:
            names.add(node.name)
            for value in [*node.inputs, *node.outputs]:
                names.add(value.name)
                ids.add(id(value))
            if node is not skip:
                for sub in ir.subgraphs(node):
                    visit(sub)

    visit(root)
    return names, ids


def _fresh(model: Model, base: str, taken: set[str]) -> str:
    name = ir.unique_name(model.graph, base)
    while name in taken:
        name = ir.unique_name(model.graph, base)
    taken.add(name)
    return name


def _inline(model: Model, graph: Graph, node: Node, cond: bool) -> None:
    branch: Graph = node.attrs["then_branch" if cond else "else_branch"]
    log.debug("If '%s': inlining the %s branch", node.name, "then" if cond else "else")
    taken, outside_ids = _names_outside(model.graph, node)
    # Names of graphs nested in the moved nodes stay in the model too.
    for inner in branch.nodes:
        for sub in ir.subgraphs(inner):
            for g in ir.iter_graphs(sub):
                taken.update(g.tensors().keys())
                taken.update(n.name for n in g.nodes)
    local = [v for n in branch.nodes for v in n.outputs if not ir.is_empty(v)]
    local += [
        v for n in branch.nodes for v in n.inputs if ir.is_constant(v) and id(v) not in outside_ids
    ]
    seen: set[int] = set()
    for value in local:
        if id(value) in seen:
            continue
        seen.add(id(value))
        if value.name in taken:
            value.name = _fresh(model, value.name, taken)
        else:
            taken.add(value.name)
    for inner in branch.nodes:
        if inner.name and inner.name in taken:
            inner.name = _fresh(model, inner.name, taken)
        elif inner.name:
            taken.add(inner.name)

    moved = list(branch.nodes)
    produced = {id(v) for n in moved for v in n.outputs}
    if_outputs = list(node.outputs)
    branch_outputs = list(branch.outputs)
    position = next(i for i, n in enumerate(graph.nodes) if n is node)
    ir.remove_node(graph, node)
    branch.nodes.clear()
    graph.nodes[position:position] = moved

    after = position + len(moved)
    claimed: dict[int, Value] = {}  # branch value id -> If output now holding it
    for if_out, b_out in zip(if_outputs, branch_outputs, strict=True):
        if if_out.dtype is None:
            if_out.dtype = b_out.dtype
        if if_out.shape is None:
            if_out.shape = b_out.shape
        if id(b_out) in produced and id(b_out) not in claimed:
            # The branch computes it: its producer now computes the If output directly.
            src = ir.producer(b_out)
            index = next(i for i, o in enumerate(src.outputs) if o is b_out)
            for user in list(b_out.outputs):
                if user is src:
                    continue
                for i, value in enumerate(user.inputs):
                    if value is b_out:
                        user.inputs[i] = if_out
            src.outputs[index] = if_out
            claimed[id(b_out)] = if_out
            continue
        source = claimed.get(id(b_out), b_out)
        if ir.is_graph_output(graph, if_out):
            keep = ir.add_node(graph, "Identity", [source], [if_out], name=f"{if_out.name}_inlined")
            # Right after the moved nodes, so the graph stays topologically sorted.
            graph.nodes.pop()
            graph.nodes.insert(after, keep)
            after += 1
        else:
            for user in list(if_out.outputs):
                for i, value in enumerate(user.inputs):
                    if value is if_out:
                        user.inputs[i] = source
