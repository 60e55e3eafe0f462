"""Graph editing facade over onnx-graphsurgeon.

Passes edit graphs only through these functions and the plain fields of nodes and values
(``node.op``, ``node.inputs``, ``node.outputs``, ``node.attrs``, ``value.name``, ``value.shape``,
``value.dtype``). Values are graphsurgeon tensors: ``Variable`` (computed or graph input) or
``Constant`` (initializer). A value's producer is ``value.inputs[0]`` and its consumers
``value.outputs``; the helpers below say it in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

Graph = gs.Graph
Node = gs.Node
Value = gs.Tensor
Variable = gs.Variable
Constant = gs.Constant

_counter = itertools.count()
# Names handed out per graph are cached on the graph (graphs are unhashable), so naming
# stays O(1) during big rewrites.
_NAMES_ATTR = "_optimizer_taken_names"


# -- queries -----------------------------------------------------------------------------------


def producer(value: Value) -> Node | None:
    """The node that computes ``value``, or None for graph inputs, initializers, outer scope."""
    return value.inputs[0] if value.inputs else None


def consumers(value: Value) -> list[Node]:
    """Nodes reading ``value`` (each once, in graph order of appearance)."""
    seen: dict[int, Node] = {}
    for node in value.outputs:
        seen.setdefault(id(node), node)
    return list(seen.values())


def is_graph_output(graph: Graph, value: Value) -> bool:
    return any(out is value for out in graph.outputs)


def is_graph_input(graph: Graph, value: Value) -> bool:
    return any(inp is value for inp in graph.inputs)


def is_constant(value: Value | None) -> bool:
    return isinstance(value, gs.Constant)


def const_value(value: Value | None) -> np.ndarray | None:
    """The array of a constant value, or None when the value is computed at run time."""
    if isinstance(value, gs.Constant):
        return value.values
    return None


def is_empty(value: Value | None) -> bool:
    """True for an omitted optional input (empty name)."""
    return value is None or (
        isinstance(value, gs.Variable) and value.name == "" and not value.inputs
    )


def single_consumer(graph: Graph, value: Value) -> Node | None:
    """The only consumer of ``value`` if it has exactly one and is not a graph output."""
    users = consumers(value)
    if len(users) != 1 or is_graph_output(graph, value):
        return None
    return users[0]


def subgraphs(node: Node) -> list[Graph]:
    """Graphs held in the node's attributes (If branches, Loop and Scan bodies)."""
    found: list[Graph] = []
    for attr in node.attrs.values():
        if isinstance(attr, gs.Graph):
            found.append(attr)
        elif isinstance(attr, list):
            found.extend(a for a in attr if isinstance(a, gs.Graph))
    return found


def iter_graphs(graph: Graph) -> Iterator[Graph]:
    """The graph and, recursively, every subgraph under it (outer before inner)."""
    yield graph
    for node in graph.nodes:
        for sub in subgraphs(node):
            yield from iter_graphs(sub)


def iter_nodes(graph: Graph, recurse: bool = True) -> Iterator[tuple[Graph, Node]]:
    """(owning graph, node) for every node, optionally descending into subgraphs."""
    for g in iter_graphs(graph) if recurse else [graph]:
        for node in list(g.nodes):
            yield g, node


def count_ops(graph: Graph, recurse: bool = True) -> dict[str, int]:
    """Histogram of op types (domain-qualified when not the default domain)."""
    counts: dict[str, int] = {}
    for _, node in iter_nodes(graph, recurse):
        key = node.op if not node.domain or node.domain == "ai.onnx" else f"{node.domain}.{node.op}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def tensors(graph: Graph) -> dict[str, Value]:
    """Every named value of this graph (not its subgraphs) by name."""
    return graph.tensors()


def outer_scope_values(graph: Graph) -> set[int]:
    """ids of values a subgraph reads but neither defines nor receives as inputs."""
    defined = {id(v) for v in graph.inputs}
    for node in graph.nodes:
        defined.update(id(o) for o in node.outputs)
    used: set[int] = set()
    for g in iter_graphs(graph):
        for node in g.nodes:
            for value in node.inputs:
                if not is_constant(value) and not is_empty(value) and id(value) not in defined:
                    used.add(id(value))
        if g is not graph:
            for node in g.nodes:
                defined.update(id(o) for o in node.outputs)
            defined.update(id(v) for v in g.inputs)
    return used - defined


# -- typed attribute getters -------------------------------------------------------------------


def attr_int(node: Node, name: str, default: int | None = None) -> int | None:
    value = node.attrs.get(name, default)
    return None if value is None else int(value)


def attr_float(node: Node, name: str, default: float | None = None) -> float | None:
    value = node.attrs.get(name, default)
    return None if value is None else float(value)


def attr_ints(node: Node, name: str, default: Sequence[int] | None = None) -> list[int] | None:
    value = node.attrs.get(name, default)
    return None if value is None else [int(v) for v in value]


def attr_str(node: Node, name: str, default: str | None = None) -> str | None:
    value = node.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode()
    return value


# -- construction ------------------------------------------------------------------------------


def share_name_scope(graph: Graph) -> None:
    """Makes the graph and all its subgraphs hand out names from one shared set.

    ONNX names are global across a model's scopes; with one set, a name created in a
    subgraph cannot clash with one in an enclosing graph. ``Model`` calls this at load.
    """
    taken: set[str] = set()
    for g in iter_graphs(graph):
        taken.update(g.tensors().keys())
        taken.update(n.name for n in g.nodes)
    for g in iter_graphs(graph):
        setattr(g, _NAMES_ATTR, taken)


def unique_name(graph: Graph, base: str) -> str:
    """A value/node name not used in the model, derived from ``base``.

    Names come from the set shared by the whole model (see :func:`share_name_scope`); a
    graph built outside a model gets its own set on first use.
    """
    # Not getattr: gs.Graph.__getattr__ treats unknown names as registered functions and logs.
    taken = graph.__dict__.get(_NAMES_ATTR)
    if taken is None:
        taken = set()
        for g in iter_graphs(graph):
            taken.update(g.tensors().keys())
            taken.update(n.name for n in g.nodes)
        setattr(graph, _NAMES_ATTR, taken)
    name = base
    while name in taken:
        name = f"{base}__{next(_counter)}"
    taken.add(name)
    return name


def make_constant(graph: Graph, array: np.ndarray, name: str = "const") -> Constant:
    """A new initializer value (not yet used by any node)."""
    return gs.Constant(unique_name(graph, name), _c_array(array))


def make_value(
    graph: Graph, name: str, dtype: Any = None, shape: Sequence | None = None
) -> Variable:
    return gs.Variable(unique_name(graph, name), dtype=dtype, shape=shape)


def add_node(
    graph: Graph,
    op: str,
    inputs: Sequence[Value],
    outputs: Sequence[Value] | int = 1,
    attrs: dict[str, Any] | None = None,
    name: str | None = None,
    domain: str | None = None,
) -> Node:
    """Appends a node (call ``toposort`` once the rewrite is done). Returns it.

    ``outputs`` may be a count: fresh values named after the node are created.
    """
    node_name = unique_name(graph, name or op)
    if isinstance(outputs, int):
        outputs = [
            make_value(graph, f"{node_name}_out{i}" if i else f"{node_name}_out")
            for i in range(outputs)
        ]
    node = gs.Node(
        op=op,
        name=node_name,
        attrs=dict(attrs or {}),
        inputs=list(inputs),
        outputs=list(outputs),
        domain=domain,
    )
    graph.nodes.append(node)
    return node


def remove_node(graph: Graph, node: Node) -> None:
    """Detaches a node from its inputs and outputs and drops it from the graph."""
    node.inputs.clear()
    node.outputs.clear()
    graph.nodes.remove(node)


def replace_all_uses(graph: Graph, old: Value, new: Value) -> None:
    """Makes every reader of ``old`` read ``new``, including the graph outputs and subgraphs.

    When ``old`` is a graph output its name is part of the model's interface: ``new`` takes
    the name over (if ``new`` is itself an interface value, an Identity keeps both names).
    """
    if old is new:
        return
    for node in list(old.outputs):
        for i, value in enumerate(node.inputs):
            if value is old:
                node.inputs[i] = new
    if is_graph_output(graph, old):
        keep_interface_name(graph, old, new)


def keep_interface_name(graph: Graph, old: Value, new: Value) -> None:
    """Replaces graph output ``old`` by ``new`` while keeping the output's name, dtype, shape."""
    needs_identity = (
        isinstance(new, gs.Constant)
        or is_graph_input(graph, new)
        or is_graph_output(graph, new)
        or producer(new) is None
        # A value computed in an enclosing graph: renaming it would rename an outer value,
        # and ONNX wants an Identity between an outer-scope value and a subgraph output.
        or not any(n is producer(new) for n in graph.nodes)
    )
    old_name = old.name
    if needs_identity:
        out = gs.Variable(old_name, dtype=old.dtype, shape=old.shape)
        old.name = unique_name(graph, old_name + "__replaced")
        add_node(graph, "Identity", [new], [out], name=f"{old_name}_keep_name")
        target = out
    else:
        old.name = unique_name(graph, old_name + "__replaced")
        new.name = old_name
        if new.dtype is None:
            new.dtype = old.dtype
        if new.shape is None:
            new.shape = old.shape
        target = new
    graph.outputs = [target if o is old else o for o in graph.outputs]


def bypass_node(graph: Graph, node: Node, input_index: int = 0, output_index: int = 0) -> None:
    """Removes a node whose output equals one of its inputs (an Identity-like no-op)."""
    src = node.inputs[input_index]
    dst = node.outputs[output_index]
    remove_node(graph, node)
    replace_all_uses(graph, dst, src)


def cleanup(graph: Graph) -> None:
    """Drops nodes and initializers that no graph output depends on (all subgraphs too)."""
    graph.cleanup(remove_unused_graph_inputs=False, recurse_subgraphs=True, recurse_functions=True)


def toposort(graph: Graph) -> None:
    graph.toposort(recurse_subgraphs=True)


def numpy_dtype_of(value: Value) -> np.dtype | None:
    """The NumPy dtype of a value (None when unknown)."""
    dtype = value.dtype
    if dtype is None:
        return None
    if isinstance(dtype, int):
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dtype))
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


def static_shape(value: Value) -> tuple[int, ...] | None:
    """The shape when every dimension is a known integer, else None."""
    if isinstance(value, gs.Constant):
        return tuple(value.values.shape)
    shape = value.shape
    if shape is None or any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def rank(value: Value) -> int | None:
    if isinstance(value, gs.Constant):
        return value.values.ndim
    return None if value.shape is None else len(value.shape)


def _c_array(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns 0-d arrays (scalars) into shape [1].
    return np.asarray(array, order="C")
