"""The run order of fusion groups: a topological order close to the graph's own."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from optimizer.errors import InvariantError
from optimizer.ir import Model
from optimizer.lower.partition import FusionGroup


@dataclass
class Schedule:
    """Fusion groups in run order (step ``i`` runs ``steps[i]``).

    Attributes:
        model: The model the groups were cut from (its graph is not modified here).
        steps: The groups, each after every group producing one of its inputs.
    """

    model: Model
    steps: list[FusionGroup] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)


def schedule(model: Model, groups: list[FusionGroup]) -> Schedule:
    """Orders the groups topologically (Kahn), preferring the graph's node order on ties.

    Raises:
        InvariantError: the groups form a cycle or read a value no one produces (a partition
            bug: the partitioner's groups must always form a DAG).
    """
    produced_by: dict[int, int] = {}
    for gi, group in enumerate(groups):
        for value in group.values_written():
            if id(value) in produced_by:
                raise InvariantError(f"value '{value.name}' written by two groups")
            produced_by[id(value)] = gi
    node_position = {id(n): i for i, n in enumerate(model.graph.nodes)}
    # A group is ready once its inputs are; ties go to the group whose first node comes first.
    rank = [min(node_position.get(id(n), len(node_position)) for n in g.nodes) for g in groups]
    successors: list[set[int]] = [set() for _ in groups]
    indegree = [0] * len(groups)
    for gi, group in enumerate(groups):
        preds = {produced_by[id(v)] for v in group.values_read() if id(v) in produced_by}
        if gi in preds:
            raise InvariantError(f"group '{group.name}' reads a value it writes")
        for p in preds:
            successors[p].add(gi)
        indegree[gi] = len(preds)
    ready = [(rank[gi], gi) for gi in range(len(groups)) if indegree[gi] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, gi = heapq.heappop(ready)
        order.append(gi)
        for s in successors[gi]:
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(ready, (rank[s], s))
    if len(order) != len(groups):
        stuck = [groups[gi].name for gi in range(len(groups)) if indegree[gi] > 0]
        raise InvariantError(f"fusion groups form a cycle (groups {', '.join(stuck[:5])} ...)")
    return Schedule(model, [groups[gi] for gi in order])
