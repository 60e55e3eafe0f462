"""Rewrite rules as data: a pattern, a check, a replacement.

A pattern is written in ONNX op vocabulary with a small builder::

    pattern = op("Add", op("MatMul", var("x"), const("w"), name="matmul"), const("b"), name="add")

``match(pattern, node)`` returns a :class:`Match`: either ok, with the bound values and nodes,
or failed with a reason and the node where matching stopped. Inner (non-root) pattern nodes
must feed only the pattern (one consumer, not a graph output), so a rewrite never duplicates
work another consumer still needs; ``shared=True`` lifts that for one pattern node.

A :class:`Rule` adds a ``check`` (semantic conditions: shapes, attributes, constant values)
and a ``rewrite`` that builds the replacement and redirects the root's outputs. A
:class:`RewritePass` applies a table of rules; ``--explain RULE`` logs why a rule did not fire.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum", "And", "Or", "Xor", "Equal"})


# -- patterns ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpPattern:
    op: str
    inputs: tuple[Pattern, ...]
    name: str | None = None
    domain: str = ""
    shared: bool = False
    commutative: bool = False


@dataclass(frozen=True)
class VarPattern:
    name: str
    optional: bool = False


@dataclass(frozen=True)
class ConstPattern:
    name: str
    optional: bool = False


Pattern = OpPattern | VarPattern | ConstPattern


def op(
    op_type: str, *inputs: Pattern, name: str | None = None, domain: str = "", shared: bool = False
) -> OpPattern:
    """A node of type ``op_type`` whose inputs match ``inputs`` (in order; Add/Mul/... either order)."""
    return OpPattern(
        op_type, tuple(inputs), name, domain, shared, op_type in COMMUTATIVE and len(inputs) == 2
    )


def var(name: str, optional: bool = False) -> VarPattern:
    """Any value, bound to ``name``. The same name twice must be the same value."""
    return VarPattern(name, optional)


def const(name: str, optional: bool = False) -> ConstPattern:
    """A constant (initializer) value, bound to ``name``."""
    return ConstPattern(name, optional)


# -- matches -----------------------------------------------------------------------------------


@dataclass
class Match:
    """Result of matching or checking: ok with bindings, or failed with a reason."""

    ok: bool
    reason: str = ""
    node: Node | None = None
    values: dict[str, Value | None] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok

    @staticmethod
    def success(**values: Value) -> Match:
        return Match(True, values=dict(values))

    @staticmethod
    def fail(reason: str, node: Node | None = None) -> Match:
        return Match(False, reason, node)

    def __getitem__(self, key: str):
        if key in self.nodes:
            return self.nodes[key]
        return self.values[key]

    def matched_nodes(self) -> list[Node]:
        return list(self.nodes.values())


OK = Match(True)


def match(graph: Graph, pattern: OpPattern, node: Node) -> Match:
    """Matches ``pattern`` rooted at ``node``."""
    m = Match(True)
    return _match_op(graph, pattern, node, m, root=True)


def _match_op(graph: Graph, pat: OpPattern, node: Node, m: Match, root: bool) -> Match:
    if node.op != pat.op or (node.domain or "") not in (
        pat.domain,
        "ai.onnx" if not pat.domain else pat.domain,
    ):
        return Match.fail(f"expected {pat.op}, found {node.op}", node)
    if not root and not pat.shared:
        out = node.outputs[0]
        if len(node.outputs) != 1 or len(ir.consumers(out)) != 1 or ir.is_graph_output(graph, out):
            return Match.fail(f"{node.op} '{node.name}' output has other consumers", node)
    inputs = list(node.inputs)
    while inputs and ir.is_empty(inputs[-1]):
        inputs.pop()
    required = sum(1 for p in pat.inputs if not getattr(p, "optional", False))
    if not required <= len(inputs) <= len(pat.inputs):
        return Match.fail(
            f"{node.op} '{node.name}' has {len(inputs)} inputs, pattern wants {len(pat.inputs)}",
            node,
        )
    orders = [inputs]
    if pat.commutative and len(inputs) == 2:
        orders.append(inputs[::-1])
    first_failure: Match | None = None
    for order in orders:
        trial = Match(True, values=dict(m.values), nodes=dict(m.nodes))
        if pat.name:
            trial.nodes[pat.name] = node
        padded = list(order) + [None] * (len(pat.inputs) - len(order))
        for sub, value in zip(pat.inputs, padded):
            trial = _match_input(graph, sub, value, trial)
            if not trial:
                break
        if trial:
            m.values, m.nodes = trial.values, trial.nodes
            return m
        if first_failure is None:  # (a failed Match is falsy: test for None explicitly)
            first_failure = trial
    # Report the failure in the inputs' own order: the swapped order's reason misleads.
    return (
        first_failure if first_failure is not None else Match.fail("no input order matched", node)
    )


def _match_input(graph: Graph, pat: Pattern, value: Value | None, m: Match) -> Match:
    if isinstance(pat, OpPattern):
        src = ir.producer(value) if value is not None else None
        if src is None:
            return Match.fail(
                f"input '{value.name if value is not None else ''}' is not produced by {pat.op}"
            )
        return _match_op(graph, pat, src, m, root=False)
    if value is None or ir.is_empty(value):
        if pat.optional:
            m.values.setdefault(pat.name, None)
            return m
        return Match.fail(f"missing input for '{pat.name}'")
    if isinstance(pat, ConstPattern) and not ir.is_constant(value):
        return Match.fail(f"'{value.name}' is not a constant")
    bound = m.values.get(pat.name)
    if bound is not None and bound is not value:
        return Match.fail(f"'{pat.name}' bound to both '{bound.name}' and '{value.name}'")
    m.values[pat.name] = value
    return m


# -- rules -------------------------------------------------------------------------------------

CheckFn = Callable[[Model, Graph, Match], Match]
RewriteFn = Callable[[Model, Graph, Match], None]


@dataclass(frozen=True)
class Rule:
    """One rewrite rule.

    Attributes:
        name: Stable id (used in stats, ``--explain``, provenance).
        pattern: What to look for, rooted at the node whose outputs get replaced.
        check: Semantic conditions beyond structure; returns ``OK`` or ``Match.fail(reason)``.
        rewrite: Adds the replacement nodes and redirects the root's outputs to them
            (``ir.replace_all_uses``); the engine removes what became dead. A rewrite that
            absorbs nodes beyond the pattern adds them to ``match.nodes`` so they are
            recorded in provenance and not matched again in the same sweep.
    """

    name: str
    pattern: OpPattern
    check: CheckFn
    rewrite: RewriteFn
    min_opset: int = 1


class RewritePass(Pass):
    """Applies a table of rules over the graph (and subgraphs) until none fires (capped)."""

    rules: Sequence[Rule] = ()
    max_sweeps = 8

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for _ in range(self.max_sweeps):
            fired = self._sweep(model, ctx, stats)
            if not fired:
                break
            ir.cleanup(model.graph)
            ir.toposort(model.graph)
        return result(model, stats)

    def _sweep(self, model: Model, ctx: PassContext, stats: Counter[str]) -> int:
        fired = 0
        by_op: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_op.setdefault(rule.pattern.op, []).append(rule)
        for graph in list(ir.iter_graphs(model.graph)):
            dead: set[int] = set()
            for node in list(graph.nodes):
                if id(node) in dead:
                    continue
                for rule in by_op.get(node.op, ()):
                    if model.opset < rule.min_opset:
                        reason = (
                            f"needs opset >= {rule.min_opset} (model has {model.opset}); "
                            f"use --target-opset {rule.min_opset}"
                        )
                        self._explain(ctx, rule, node, Match.fail(reason, node))
                        continue
                    m = match(graph, rule.pattern, node)
                    if m:
                        checked = rule.check(model, graph, m)
                        if not checked:
                            m = checked
                    if not m:
                        self._explain(ctx, rule, node, m)
                        continue
                    before = {id(n) for n in graph.nodes}
                    rule.rewrite(model, graph, m)
                    origin = ",".join(n.name for n in [node, *m.matched_nodes()] if n.name)
                    for new in graph.nodes:
                        if id(new) not in before:
                            model.provenance[new.name] = {
                                "optimizer.rule": rule.name,
                                "optimizer.from": origin,
                            }
                    dead.update(id(n) for n in m.matched_nodes())
                    dead.add(id(node))
                    stats[rule.name] += 1
                    fired += 1
                    break
        return fired

    @staticmethod
    def _explain(ctx: PassContext, rule: Rule, node: Node, m: Match) -> None:
        if rule.name in ctx.explain or "all" in ctx.explain:
            where = m.node.name if m.node is not None else node.name
            line = f"{rule.name}: not applied at {node.op} '{node.name}': {m.reason} (at '{where}')"
            ctx.explanations.append(line)
            log.info(line)
        else:
            log.debug("%s: no match at %s: %s", rule.name, node.name, m.reason)
