"""Transpose cancellation, composition and sinking through elementwise ops."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)

# Ops computing each output element from the same element of their single data input: a
# Transpose commutes with them. Clip is here only with constant (or omitted) bounds.
UNARY_ELEMENTWISE = frozenset(
    {
        "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu",
        "Clip", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
        "HardSwish", "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not",
        "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
        "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
    }
)  # fmt: skip
# Two-input ops with numpy broadcasting.
BINARY_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})

CANCELLED = "Transpose pair cancelled"
MERGED = "Transpose pair merged"
SUNK = "Transpose sunk"
# Each sweep removes at least one Transpose; the cap only guards against a bug looping.
_MAX_SWEEPS = 64


def transpose_perm(node: Node) -> list[int] | None:
    """The permutation of a Transpose (its default reverses the axes), None if rank unknown."""
    perm = ir.attr_ints(node, "perm")
    if perm is not None:
        return perm
    r = ir.rank(node.inputs[0])
    return None if r is None else list(range(r))[::-1]


def compose(first: Sequence[int], second: Sequence[int]) -> list[int]:
    """The perm of ``Transpose(second)`` applied after ``Transpose(first)``."""
    return [int(first[i]) for i in second]


def inverse(perm: Sequence[int]) -> list[int]:
    return [int(i) for i in np.argsort(perm)]


def _is_identity(perm: Sequence[int]) -> bool:
    return list(perm) == list(range(len(perm)))


@dataclass
class _Sink:
    """A planned sinking: heads (Transposes with one perm) -> elementwise chain -> tail."""

    perm: list[int]
    heads: list[Node]
    chain: list[Node]
    tail: Node
    tail_perm: list[int] = field(default_factory=list)
    # (node, input index, new constant array) for constant operands to permute.
    constants: list[tuple[Node, int, np.ndarray]] = field(default_factory=list)


class OptimizeTransposes(Pass):
    """Cancels, composes and sinks Transposes.

    Rewrites:
        * ``Transpose(Transpose(x, p1), p2)`` -> nothing when the composition is the identity
          ("Transpose pair cancelled"), else one ``Transpose(x, p1∘p2)`` ("Transpose pair
          merged"). The inner Transpose must feed only the outer one.
        * A Transpose followed by a chain of elementwise ops (unary ops, Clip with constant
          bounds, Cast, ...; Add/Sub/Mul/Div/Pow whose other operand is a constant or a
          Transpose with the same perm) that ends in another Transpose: the upstream
          Transposes are removed ("Transpose sunk", one per removed Transpose), constant
          operands are broadcast to the rank and permuted, and the final Transpose is
          composed with the sunk perm (then cancelled or merged as above).

    Refuses: Transposes with several consumers, a chain value that is a graph output or has
    several consumers, a binary op whose other operand is neither a constant nor a same-perm
    Transpose, a constant of higher rank than the Transpose, unknown ranks, and chains that do
    not end in a Transpose (moving the Transpose would gain nothing). Transposes of constants
    are left to constant folding.
    """

    name = "optimize_transposes"
    summary = "cancel, compose and sink Transposes through elementwise ops"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for graph in list(ir.iter_graphs(model.graph)):
            for _ in range(_MAX_SWEEPS):
                if not self._sweep(graph, stats):
                    break
        if stats:
            ir.cleanup(model.graph)
            ir.toposort(model.graph)
        return result(model, stats)

    def _sweep(self, graph: Graph, stats: Counter[str]) -> bool:
        removed: set[int] = set()
        for node in list(graph.nodes):
            if id(node) in removed or node.op != "Transpose" or not _default_domain(node):
                continue
            gone = _merge_pair(graph, node, stats)
            if gone is None:
                plan = _plan_sink(graph, node)
                gone = _apply_sink(graph, plan, stats) if plan is not None else None
            if gone is not None:
                removed.update(id(n) for n in gone)
        return bool(removed)


# -- Transpose -> Transpose ---------------------------------------------------------------------


def _merge_pair(graph: Graph, outer: Node, stats: Counter[str]) -> list[Node] | None:
    """Folds ``outer(inner(x))``; returns the removed nodes, or None when it does not apply."""
    inner = ir.producer(outer.inputs[0])
    if (
        inner is None
        or inner.op != "Transpose"
        or not _default_domain(inner)
        or _sole_user(graph, inner.outputs[0]) is not outer
    ):
        return None
    p1, p2 = transpose_perm(inner), transpose_perm(outer)
    if p1 is None or p2 is None or len(p1) != len(p2):
        return None
    source = inner.inputs[0]
    ir.remove_node(graph, inner)
    return [inner, *_finish(graph, outer, source, compose(p1, p2), stats)]


def _finish(
    graph: Graph, tail: Node, source: Value, perm: list[int], stats: Counter[str]
) -> list[Node]:
    """Makes ``tail`` transpose ``source`` by ``perm``, or drops it when that is the identity."""
    if _is_identity(perm):
        out = tail.outputs[0]
        ir.remove_node(graph, tail)
        ir.replace_all_uses(graph, out, source)
        stats[CANCELLED] += 1
        return [tail]
    tail.inputs[0] = source
    tail.attrs["perm"] = perm
    stats[MERGED] += 1
    return []


# -- sinking ------------------------------------------------------------------------------------


def _plan_sink(graph: Graph, head: Node) -> _Sink | None:
    perm = transpose_perm(head)
    if perm is None:
        return None
    plan = _Sink(perm, [head], [], head)
    value = head.outputs[0]
    while True:
        user = _sole_user(graph, value)
        if user is None:
            return None
        if user.op == "Transpose" and _default_domain(user):
            tail_perm = transpose_perm(user)
            if not plan.chain or tail_perm is None or len(tail_perm) != len(perm):
                return None  # a plain pair is _merge_pair's business
            plan.tail, plan.tail_perm = user, tail_perm
            return plan
        if not _can_pass(graph, user, value, plan):
            return None
        plan.chain.append(user)
        value = user.outputs[0]
        if ir.rank(value) not in (None, len(perm)):
            return None


def _can_pass(graph: Graph, node: Node, value: Value, plan: _Sink) -> bool:
    if not _default_domain(node) or len(node.outputs) != 1:
        return False
    if node.op in UNARY_ELEMENTWISE:
        if node.inputs[0] is not value:
            return False
        if node.op == "Clip":
            return all(ir.is_empty(b) or ir.is_constant(b) for b in node.inputs[1:])
        return len(node.inputs) == 1
    if node.op not in BINARY_ELEMENTWISE or len(node.inputs) != 2:
        return False
    r = len(plan.perm)
    for i, operand in enumerate(node.inputs):
        if operand is value:
            continue
        array = ir.const_value(operand)
        if array is not None:
            if array.ndim > r:
                return False
            full = array.reshape((1,) * (r - array.ndim) + array.shape)
            plan.constants.append((node, i, np.transpose(full, inverse(plan.perm))))
            continue
        other = ir.producer(operand)
        if (
            other is None
            or other.op != "Transpose"
            or transpose_perm(other) != plan.perm
            or _sole_user(graph, operand) is not node
        ):
            return False
        if not any(h is other for h in plan.heads):
            plan.heads.append(other)
    return True


def _apply_sink(graph: Graph, plan: _Sink, stats: Counter[str]) -> list[Node]:
    inv = inverse(plan.perm)
    for head in plan.heads:
        source, out = head.inputs[0], head.outputs[0]
        for user in ir.consumers(out):
            for i, v in enumerate(user.inputs):
                if v is out:
                    user.inputs[i] = source
        ir.remove_node(graph, head)
        stats[SUNK] += 1
    for node, index, array in plan.constants:
        node.inputs[index] = ir.make_constant(graph, array, f"{node.name}_permuted")
    for node in plan.chain:
        out = node.outputs[0]
        if out.shape is not None and len(out.shape) == len(inv):
            out.shape = [out.shape[j] for j in inv]
    log.debug("sank %d Transpose(s) through %d ops", len(plan.heads), len(plan.chain))
    last = plan.chain[-1].outputs[0]
    composed = compose(plan.perm, plan.tail_perm)
    return [*plan.heads, *_finish(graph, plan.tail, last, composed, stats)]


def _default_domain(node: Node) -> bool:
    return (node.domain or "") in ("", "ai.onnx")


def _sole_user(graph: Graph, value: Value) -> Node | None:
    """The only consumer of ``value`` in this very graph (not a subgraph), if any."""
    user = ir.single_consumer(graph, value)
    if user is None or not any(n is user for n in graph.nodes):
        return None
    return user
