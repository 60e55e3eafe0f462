"""Graph invariants checked after every pass (the instrument the pass manager runs in tests).

Cheap structural checks, linear in the graph size; the ONNX checker proper runs at the end.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from optimizer.ir.graph import Graph, is_empty, subgraphs


def graph_problems(graph: Graph, outer: set[int] | None = None, where: str = "graph") -> list[str]:
    """Every invariant violation found, as readable lines (empty when the graph is sound).

    Checks: each node input is defined before use (graph input, constant, earlier node
    output, or an outer-scope value for subgraphs); no value is produced twice; value names
    are unique; every graph output is defined; nodes are in topological order.
    """
    problems: list[str] = []
    defined: set[int] = set(outer or ())
    names: dict[str, int] = {}

    def define(value: gs.Tensor, by: str) -> None:
        if id(value) in defined and not isinstance(value, gs.Constant):
            problems.append(f"{where}: value '{value.name}' is defined twice ({by})")
        defined.add(id(value))
        if value.name:
            prev = names.setdefault(value.name, id(value))
            if prev != id(value):
                problems.append(f"{where}: two different values are named '{value.name}'")

    for value in graph.inputs:
        define(value, "graph input")
    for node in graph.nodes:
        for i, value in enumerate(node.inputs):
            if is_empty(value):
                continue
            if isinstance(value, gs.Constant):
                define(value, "constant")
                continue
            if id(value) not in defined:
                problems.append(
                    f"{where}: node '{node.name}' ({node.op}) input {i} '{value.name}' is used before "
                    "it is defined (dangling value or not topologically sorted)"
                )
        for sub in subgraphs(node):
            problems.extend(graph_problems(sub, defined, f"{where}/{node.name}"))
        for value in node.outputs:
            if is_empty(value):
                continue
            if value.inputs and value.inputs[0] is not node:
                problems.append(
                    f"{where}: value '{value.name}' lists a different producer than '{node.name}'"
                )
            define(value, f"output of '{node.name}'")
    for value in graph.outputs:
        if id(value) not in defined and not isinstance(value, gs.Constant):
            problems.append(f"{where}: graph output '{value.name}' is not computed by the graph")
    return problems
