"""Partitioning an optimized, shape-pinned graph into fusion groups, one kernel call each.

Five kinds of group, claimed in this order:

0. **layer_norm**: a decomposed layer normalization (ReduceMean, Sub, Pow, ReduceMean, Add,
   Sqrt, Div, optional affine Mul / Add; see ``fuse_norm.py``), run by one layer norm kernel
   whatever the opset. Pattern ``layer_norm``.
1. **attention** (only with ``PartitionOptions.attention``: targets with an attention kernel):
   ``MatMul(Q, K^T)``, scalings, a mask ``Add``, ``Softmax``, ``MatMul(P, V)`` and the head
   split / merge views around them (see ``fuse_attention.py``). Pattern ``attention``.
2. **epilogue**: a Conv / Gemm / MatMul anchor with what follows it in a straight line: a
   constant bias ``Add``, a residual ``Add`` of a same-shaped tensor, and one activation
   (``ops.EPILOGUE_ACTIVATIONS``, or SiLU / HardSwish written as ``x * Sigmoid(x)`` /
   ``x * HardSigmoid(x)``, or the erf GELU written out: ``0.5 * x * (1 + Erf(x / sqrt(2)))``),
   in that order, each
   optional. An intermediate joins only when the group is its sole reader and it is no graph
   output, so nothing inside a group needs memory. Pattern names read ``conv+bias+add+relu``.
3. **elementwise**: connected elementwise ops of one output shape, grown backwards from a sink
   (its one output): a producer joins when every reader of its output is already in the group.
   Internal fan-out (``x * sigmoid(x)``, erf-GELU) stays inside. Pattern ``div+erf+add+mul``.
4. **single**: everything else, one node per group, pattern = the op name in lower case.

Every group's external outputs come from its last node, which every member reaches, so the
groups always form a DAG (see ``schedule.py``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

from optimizer import ir
from optimizer.errors import InvariantError
from optimizer.ir import Graph, Model, Node, Value
from optimizer.lower import ops
from optimizer.lower.fuse_attention import AttentionMatch, match_attention
from optimizer.lower.fuse_norm import LayerNormMatch, match_layer_norm
from optimizer.lower.static_shapes import require_static_shapes

log = logging.getLogger(__name__)

LAYER_NORM = "layer_norm"
ATTENTION = "attention"
EPILOGUE = "epilogue"
ELEMENTWISE = "elementwise"
SINGLE = "single"


@dataclass(frozen=True)
class PartitionOptions:
    """What the partitioner may fuse (narrowed to what the selected backend's kernels do).

    Attributes:
        anchors: Op types that start an epilogue group.
        activations: Pattern names of activations an epilogue may end with (``silu`` too).
        epilogues: Fuse epilogues at all.
        elementwise: Fuse chains of elementwise ops.
        layer_norm: Fuse decomposed layer normalizations.
        attention: Fuse attention (``fuse_attention.py``); only targets with an attention
            kernel (cuda) set it.
    """

    anchors: frozenset[str] = frozenset(ops.ANCHOR_OPS)
    activations: frozenset[str] = frozenset([*ops.EPILOGUE_ACTIVATIONS.values(), ops.SILU])
    epilogues: bool = True
    elementwise: bool = True
    layer_norm: bool = True
    attention: bool = False


@dataclass
class Epilogue:
    """Roles in an epilogue group, for the kernel that implements it.

    Attributes:
        anchor: The Conv / Gemm / MatMul node.
        bias: The constant of a separate bias ``Add`` (None when absent or when the anchor
            carries its own bias input).
        residual: The tensor of a residual ``Add``.
        activation: The activation's pattern name (``relu``, ``silu``...).
        activation_nodes: The nodes computing it (their attributes hold its parameters).
    """

    anchor: Node
    bias: Value | None = None
    residual: Value | None = None
    activation: str | None = None
    activation_nodes: list[Node] = field(default_factory=list)


@dataclass
class FusionGroup:
    """Nodes run as one kernel call.

    Attributes:
        nodes: Members in topological order.
        inputs: The kernel's positional inputs (None: an omitted optional input). For single
            groups the node's own inputs; for epilogues the anchor's inputs (padded with None
            to its full arity: Conv and Gemm 3, MatMul 2), then the bias,
            residual and the activation's extra inputs (Clip bounds); for elementwise groups
            the external values in order of first use.
        outputs: Values the group writes (None: an omitted optional output of a node).
        pattern: ``conv+bias+add+relu``, ``sub+pow``, ``maxpool``...
        kind: ``epilogue``, ``elementwise`` or ``single``.
        epilogue: Roles of an epilogue group.
        implicit_inputs: Outer-scope values read inside subgraphs (If / Loop bodies).
        norm: Roles of a layer_norm group (``fuse_norm.LayerNormMatch``).
        attention: Roles of an attention group (``fuse_attention.AttentionMatch``).
    """

    nodes: list[Node]
    inputs: list[Value | None]
    outputs: list[Value | None]
    pattern: str
    kind: str
    epilogue: Epilogue | None = None
    implicit_inputs: list[Value] = field(default_factory=list)
    norm: LayerNormMatch | None = None
    attention: AttentionMatch | None = None

    @property
    def name(self) -> str:
        """The first node's name (the anchor of an epilogue)."""
        return self.nodes[0].name

    def values_read(self) -> list[Value]:
        """Distinct values read at run time (inputs without omissions, plus implicit ones)."""
        return _dedup([v for v in [*self.inputs, *self.implicit_inputs] if v is not None])

    def values_written(self) -> list[Value]:
        return [v for v in self.outputs if v is not None]

    def describe(self) -> str:
        """One readable line: ``conv+bias+relu  Conv 'c1' + Relu 'r1'  (x, w, b) -> (y)``."""
        members = " + ".join(f"{n.op} '{n.name}'" for n in self.nodes)
        ins = ", ".join("-" if v is None else _value_text(v) for v in self.inputs)
        outs = ", ".join("-" if v is None else _value_text(v) for v in self.outputs)
        return f"{self.pattern:<24} {members}  ({ins}) -> ({outs})"


def partition(model: Model, options: PartitionOptions | None = None) -> list[FusionGroup]:
    """Splits the model's top-level graph into fusion groups (in graph order of their nodes).

    Args:
        model: An optimized model with static shapes (``--input-shape`` pins symbolic ones).
        options: What may be fused.

    Returns:
        Groups covering every top-level node exactly once.

    Raises:
        UnsupportedModelError: a symbolic or data-dependent shape is left.
    """
    options = options or PartitionOptions()
    require_static_shapes(model)
    graph = model.graph
    ir.toposort(graph)
    order = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(order)}
    claimed: dict[int, FusionGroup] = {}
    groups: list[FusionGroup] = []

    if options.layer_norm:
        for group in _layer_norm_groups(model, order, claimed):
            groups.append(group)
            claimed.update((id(n), group) for n in group.nodes)
    if options.attention:
        groups.extend(_attention_groups(model, order, claimed))
    if options.epilogues:
        for node in order:
            if node.op in options.anchors and id(node) not in claimed:
                group = _epilogue_group(graph, node, options, claimed)
                if group is not None:
                    groups.append(group)
                    claimed.update((id(n), group) for n in group.nodes)
    if options.elementwise:
        for group in _elementwise_groups(graph, order, claimed):
            groups.append(group)
            claimed.update((id(n), group) for n in group.nodes)
    for node in order:
        if id(node) not in claimed:
            group = _single_group(node)
            groups.append(group)
            claimed[id(node)] = group

    if len(claimed) != len(order):
        raise InvariantError(f"partition covered {len(claimed)} of {len(order)} nodes")
    groups.sort(key=lambda g: position[id(g.nodes[-1])])
    log.debug(
        "partition: %d nodes -> %d groups %s", len(order), len(groups), pattern_counts(groups)
    )
    return groups


def pattern_counts(groups: list[FusionGroup]) -> dict[str, int]:
    """How many groups of each pattern, most frequent first."""
    return dict(Counter(g.pattern for g in groups).most_common())


def describe_partition(groups: list[FusionGroup]) -> str:
    """A multi-line listing: a summary line, then one line per group."""
    fused = sum(len(g.nodes) for g in groups if len(g.nodes) > 1)
    lines = [f"{len(groups)} groups ({fused} nodes fused): {pattern_counts(groups)}"]
    lines += [f"  [{i}] {g.describe()}" for i, g in enumerate(groups)]
    return "\n".join(lines)


# -- layer norm groups -------------------------------------------------------------------------


def _layer_norm_groups(
    model: Model, order: list[Node], claimed: dict[int, FusionGroup]
) -> list[FusionGroup]:
    groups: list[FusionGroup] = []
    taken: set[int] = set()
    for node in order:
        if node.op not in ("Div", "Mul") or id(node) in claimed or id(node) in taken:
            continue
        found = match_layer_norm(model, model.graph, node)
        if not isinstance(found, LayerNormMatch):
            continue
        if any(id(n) in claimed or id(n) in taken for n in found.nodes):
            continue
        taken.update(id(n) for n in found.nodes)
        inside = {id(o) for n in found.nodes for o in n.outputs}
        inputs = _dedup(
            [v for n in found.nodes for v in n.inputs if not ir.is_empty(v) and id(v) not in inside]
        )
        groups.append(
            FusionGroup(
                nodes=found.nodes,
                inputs=list(inputs),
                outputs=[found.output],
                pattern=LAYER_NORM,
                kind=LAYER_NORM,
                norm=found,
            )
        )
    return groups


# -- attention groups --------------------------------------------------------------------------


def _attention_groups(
    model: Model, order: list[Node], claimed: dict[int, FusionGroup]
) -> list[FusionGroup]:
    """One group per matched attention (``fuse_attention.py``); claims its nodes."""
    groups: list[FusionGroup] = []
    for node in order:
        if node.op != "Softmax" or id(node) in claimed:
            continue
        found = match_attention(model, model.graph, node)
        if not isinstance(found, AttentionMatch):
            log.debug("attention at '%s' not fused: %s", node.name, found.reason)
            continue
        nodes = found.nodes(model.graph)
        if any(id(n) in claimed for n in nodes):
            continue
        group = FusionGroup(nodes=nodes, inputs=list(found.inputs()), outputs=[found.output],
                            pattern=ATTENTION, kind=ATTENTION, attention=found)  # fmt: skip
        groups.append(group)
        claimed.update((id(n), group) for n in nodes)
    return groups


# -- epilogue groups ---------------------------------------------------------------------------


def _epilogue_group(
    graph: Graph, anchor: Node, options: PartitionOptions, claimed: dict[int, FusionGroup]
) -> FusionGroup | None:
    if len(anchor.outputs) != 1:
        return None
    epi = Epilogue(anchor)
    nodes = [anchor]
    parts = [ops.ANCHOR_OPS.get(anchor.op, anchor.op.lower())]
    out = anchor.outputs[0]
    own_bias = anchor.op in ("Conv", "Gemm") and _present(anchor.inputs, 2)
    if own_bias:
        parts.append("bias")

    def next_node(value: Value) -> Node | None:
        user = ir.single_consumer(graph, value)
        return None if user is None or id(user) in claimed else user

    user = next_node(out)
    if not own_bias and user is not None and user.op == "Add":
        bias = _other_operand(user, out)
        if bias is not None and _is_bias(anchor, out, bias, user.outputs[0]):
            epi.bias = bias
            nodes.append(user)
            parts.append("bias")
            out = user.outputs[0]
            user = next_node(out)
    if user is not None and user.op == "Add":
        residual = _other_operand(user, out)
        if residual is not None and _is_residual(out, residual, user.outputs[0]):
            epi.residual = residual
            nodes.append(user)
            parts.append("add")
            out = user.outputs[0]
            user = next_node(out)
    act = _activation(graph, out, user, options, claimed)
    if act is not None:
        epi.activation, epi.activation_nodes = act
        nodes.extend(epi.activation_nodes)
        parts.append(epi.activation)
    if len(nodes) == 1 and not own_bias:
        return None  # a bare anchor is a single group
    # The anchor's inputs padded to its full arity, so the extras sit at fixed positions.
    inputs: list[Value | None] = [None if ir.is_empty(v) else v for v in anchor.inputs]
    inputs += [None] * (ops.ANCHOR_ARITY.get(anchor.op, 0) - len(inputs))
    inputs += [v for v in (epi.bias, epi.residual) if v is not None]
    for act_node in epi.activation_nodes:
        if act_node.op == "Clip":
            inputs += [v for v in act_node.inputs[1:] if not ir.is_empty(v)]
    return FusionGroup(
        nodes=nodes,
        inputs=inputs,
        outputs=[nodes[-1].outputs[0]],
        pattern="+".join(parts),
        kind=EPILOGUE,
        epilogue=epi,
    )


def _present(values: list[Value], index: int) -> bool:
    return len(values) > index and not ir.is_empty(values[index])


def _other_operand(add: Node, value: Value) -> Value | None:
    """The operand of a binary node that is not ``value`` (None for ``Add(v, v)``)."""
    if len(add.inputs) != 2:
        return None
    a, b = add.inputs
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None


def _same_type(a: Value, b: Value) -> bool:
    return ir.numpy_dtype_of(a) == ir.numpy_dtype_of(b)


def _is_bias(anchor: Node, out: Value, bias: Value, result: Value) -> bool:
    """A constant varying at most along the channel axis (1 for Conv, last for Gemm/MatMul)."""
    array = ir.const_value(bias)
    shape = ir.static_shape(out)
    if array is None or shape is None or not _same_type(bias, out):
        return False
    if ir.static_shape(result) != shape or array.ndim > len(shape):
        return False
    channel_axis = 1 if anchor.op == "Conv" else len(shape) - 1
    offset = len(shape) - array.ndim
    for i, dim in enumerate(array.shape):
        axis = i + offset
        if dim != 1 and not (axis == channel_axis and dim == shape[axis]):
            return False
    return True


def _is_residual(out: Value, residual: Value, result: Value) -> bool:
    """A computed tensor of exactly the output's shape and type (no broadcasting)."""
    shape = ir.static_shape(out)
    return (
        not ir.is_constant(residual)
        and shape is not None
        and ir.static_shape(residual) == shape
        and ir.static_shape(result) == shape
        and _same_type(residual, out)
    )


def _activation(
    graph: Graph,
    out: Value,
    user: Node | None,
    options: PartitionOptions,
    claimed: dict[int, FusionGroup],
) -> tuple[str, list[Node]] | None:
    if user is not None:
        name = ops.EPILOGUE_ACTIVATIONS.get(user.op)
        if (
            name in options.activations
            and user.inputs
            and user.inputs[0] is out
            and len(user.outputs) == 1
            and (
                user.op != "Clip"
                or all(ir.is_empty(v) or ir.is_constant(v) for v in user.inputs[1:])
            )
        ):
            return name, [user]
        return None
    return _silu(graph, out, options, claimed) or _gelu_erf(graph, out, options, claimed)


def _silu(
    graph: Graph, out: Value, options: PartitionOptions, claimed: dict[int, FusionGroup]
) -> tuple[str, list[Node]] | None:
    """``Mul(x, Sigmoid(x))`` (SiLU) or ``Mul(x, HardSigmoid(x; 1/6, 0.5))`` (HardSwish as
    exported below opset 14), either operand order, reading ``x`` = ``out`` only."""
    if ir.is_graph_output(graph, out):
        return None
    users = ir.consumers(out)
    if len(users) != 2 or any(id(u) in claimed for u in users):
        return None
    gate_node = next((u for u in users if u.op in ("Sigmoid", "HardSigmoid")), None)
    mul = next((u for u in users if u.op == "Mul"), None)
    if gate_node is None or mul is None or gate_node.inputs[0] is not out:
        return None
    if gate_node.op == "Sigmoid":
        name = ops.SILU
    else:
        alpha = ir.attr_float(gate_node, "alpha", 0.2)
        beta = ir.attr_float(gate_node, "beta", 0.5)
        if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
            return None
        name = ops.EPILOGUE_ACTIVATIONS["HardSwish"]
    if name not in options.activations:
        return None
    gate = gate_node.outputs[0]
    if ir.single_consumer(graph, gate) is not mul:
        return None
    if {id(v) for v in mul.inputs} != {id(out), id(gate)} or len(mul.inputs) != 2:
        return None
    return name, [gate_node, mul]


def _gelu_erf(
    graph: Graph, out: Value, options: PartitionOptions, claimed: dict[int, FusionGroup]
) -> tuple[str, list[Node]] | None:
    """The erf GELU ``0.5 * x * (1 + Erf(x / sqrt(2)))`` reading ``x`` = ``out``, as exporters
    write it: ``x / sqrt(2)`` or ``x * (1 / sqrt(2))``; then ``(x * a) * 0.5``,
    ``x * (a * 0.5)`` or ``(x * 0.5) * a`` for ``a = Erf(..) + 1``, any operand order, every
    constant a scalar. Bound as act code gelu_erf (``bind._activation``: its first node
    carries no ``approximate`` attribute)."""
    if ops.EPILOGUE_ACTIVATIONS["Gelu"] not in options.activations:
        return None
    if ir.is_graph_output(graph, out):
        return None
    users = ir.consumers(out)
    if len(users) != 2 or any(id(u) in claimed for u in users):
        return None
    root = next(
        (u for u in users if _scaled(u, out, {"Div": math.sqrt(2), "Mul": math.sqrt(0.5)})), None
    )
    other = next((u for u in users if u is not root), None)
    if root is None or other is None or other.op != "Mul" or len(other.inputs) != 2:
        return None
    erf = ir.single_consumer(graph, root.outputs[0])
    if erf is None or erf.op != "Erf":
        return None
    add = ir.single_consumer(graph, erf.outputs[0])
    if add is None or not _scaled(add, erf.outputs[0], {"Add": 1.0}):
        return None
    a = add.outputs[0]
    shape = ir.static_shape(out)
    if any(ir.static_shape(n.outputs[0]) != shape for n in (root, erf, add, other)):
        return None
    nxt = ir.single_consumer(graph, a)
    if {id(v) for v in other.inputs} == {id(out), id(a)}:  # (x * a) * 0.5
        last = ir.single_consumer(graph, other.outputs[0])
        if last is None or not _scaled(last, other.outputs[0], {"Mul": 0.5}):
            return None
        nodes = [root, erf, add, other, last]
    elif nxt is not None and _scaled(nxt, a, {"Mul": 0.5}):  # x * (a * 0.5)
        if {id(v) for v in other.inputs} != {id(out), id(nxt.outputs[0])}:
            return None
        if ir.single_consumer(graph, nxt.outputs[0]) is not other:
            return None
        nodes = [root, erf, add, nxt, other]
    elif _scaled(other, out, {"Mul": 0.5}):  # (x * 0.5) * a
        last = ir.single_consumer(graph, other.outputs[0])
        if last is None or last is not nxt or last.op != "Mul" or len(last.inputs) != 2:
            return None
        if {id(v) for v in last.inputs} != {id(other.outputs[0]), id(a)}:
            return None
        nodes = [root, erf, add, other, last]
    else:
        return None
    if ir.static_shape(nodes[-1].outputs[0]) != shape or any(id(n) in claimed for n in nodes):
        return None
    inside = {id(n) for n in nodes}
    for node in nodes[:-1]:  # every intermediate is read only inside
        value = node.outputs[0]
        if ir.is_graph_output(graph, value) or any(
            id(u) not in inside for u in ir.consumers(value)
        ):
            return None
    return ops.EPILOGUE_ACTIVATIONS["Gelu"], nodes


def _scaled(node: Node, x: Value, constants: dict[str, float]) -> bool:
    """``node`` is ``op(x, c)`` (or ``op(c, x)`` for Add / Mul) for a scalar constant ``c``
    within 1e-5 (relative) of ``constants[op]``."""
    want = constants.get(node.op)
    if want is None or len(node.inputs) != 2 or len(node.outputs) != 1:
        return False
    first, second = node.inputs
    if first is x and second is not x:
        c = second
    elif second is x and first is not x and node.op != "Div":
        c = first
    else:
        return False
    array = ir.const_value(c)
    if array is None or array.size != 1 or not _same_type(c, x):
        return False
    return abs(float(array.reshape(-1)[0]) - want) <= 1e-5 * abs(want)


# -- elementwise groups ------------------------------------------------------------------------


def _elementwise_groups(
    graph: Graph, order: list[Node], claimed: dict[int, FusionGroup]
) -> list[FusionGroup]:
    """Grows groups backwards from sinks; a producer joins when all its readers are inside."""
    member_of: dict[int, int] = {}  # node id -> index into ``members``
    members: list[list[Node]] = []
    shapes: list[tuple[int, ...]] = []
    for node in reversed(order):
        if id(node) in claimed or not ops.is_elementwise(node.op) or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        shape = ir.static_shape(out)
        target = None
        users = ir.consumers(out)
        if users and not ir.is_graph_output(graph, out):
            indices = {member_of.get(id(u)) for u in users}
            if len(indices) == 1 and None not in indices:
                (index,) = indices
                if shapes[index] == shape:
                    target = index
        if target is None:
            target = len(members)
            members.append([])
            shapes.append(shape)  # type: ignore[arg-type]
        members[target].append(node)
        member_of[id(node)] = target
    groups = []
    for nodes in members:
        if len(nodes) < 2:
            continue  # a lone elementwise op is a single group
        nodes.reverse()  # grown from the sink backwards: now topological
        inside = {id(o) for n in nodes for o in n.outputs}
        inputs = _dedup(
            [v for n in nodes for v in n.inputs if not ir.is_empty(v) and id(v) not in inside]
        )
        groups.append(
            FusionGroup(
                nodes=nodes,
                inputs=list(inputs),
                outputs=[nodes[-1].outputs[0]],
                pattern="+".join(n.op.lower() for n in nodes),
                kind=ELEMENTWISE,
            )
        )
    return groups


# -- single groups -----------------------------------------------------------------------------


def _single_group(node: Node) -> FusionGroup:
    implicit: list[Value] = []
    subgraphs = ir.subgraphs(node)
    if subgraphs:
        outer = set().union(*(ir.outer_scope_values(g) for g in subgraphs))
        implicit = _dedup(
            [
                v
                for g in subgraphs
                for _, n in ir.iter_nodes(g)
                for v in n.inputs
                if id(v) in outer and not ir.is_constant(v)
            ]
        )
    outputs: list[Value | None] = [None if not v.name else v for v in node.outputs]
    while outputs and outputs[-1] is None:
        outputs.pop()  # trailing omitted outputs: the kernel sees fewer outputs
    return FusionGroup(
        nodes=[node],
        inputs=[None if ir.is_empty(v) else v for v in node.inputs],
        outputs=outputs,
        pattern=node.op.lower(),
        kind=SINGLE,
        implicit_inputs=implicit,
    )


def _dedup(values: list[Value]) -> list[Value]:
    seen: set[int] = set()
    out = []
    for v in values:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _value_text(value: Value) -> str:
    shape = ir.static_shape(value)
    dims = "x".join(str(d) for d in shape) if shape is not None else "?"
    if ir.is_constant(value):
        return f"{value.name}:const[{dims}]"
    return f"{value.name}[{dims}]"
