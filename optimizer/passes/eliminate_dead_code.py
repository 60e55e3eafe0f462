"""Dead-code and unused-initializer removal."""

from __future__ import annotations

from collections import Counter

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result


class EliminateDeadCode(Pass):
    """Removes nodes no graph output depends on, and initializers nothing reads.

    Graph inputs are part of the model's interface and are never removed. Subgraphs are
    cleaned too; values a subgraph reads from the outer scope keep their producers alive.
    """

    name = "eliminate_dead_code"
    summary = "remove nodes and initializers no output depends on"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        before_nodes = sum(len(g.nodes) for g in ir.iter_graphs(model.graph))
        before_consts = _count_constants(model.graph)
        ir.cleanup(model.graph)
        stats: Counter[str] = Counter()
        stats["dead node removed"] = before_nodes - sum(
            len(g.nodes) for g in ir.iter_graphs(model.graph)
        )
        stats["unused initializer removed"] = (
            before_consts - _count_constants(model.graph) + model.unused_initializers
        )
        model.unused_initializers = 0
        stats["initializer dropped from graph inputs"] = model.initializer_inputs
        model.initializer_inputs = 0
        return result(model, stats)


def _count_constants(graph: ir.Graph) -> int:
    return sum(1 for g in ir.iter_graphs(graph) for t in g.tensors().values() if ir.is_constant(t))
